"""WCAG 2.2 AA on the five main pages, checked by axe-core (npm, pinned in package-lock.json):
sign-in, worklist, case page, meeting room and teaching, each once its slide is drawn.

axe runs in the page through Playwright's evaluate, which the page's Content Security Policy
does not govern, so the policy stays as strict as in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Frame, Page, expect

from e2e.conftest import E2ESession
from e2e.test_meeting import case_frame, expect_case_on_screen
from e2e.test_session import TIMEOUT_MS

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING = ("serious", "critical")


def axe_violations(where: Page | Frame) -> list[dict[str, Any]]:
    """Serious and critical WCAG A/AA violations axe finds in ``where`` as it is now."""
    if not where.evaluate("() => typeof window.axe === 'object'"):
        where.evaluate(AXE.read_text(encoding="utf-8"))
    result = where.evaluate(
        "async (tags) => (await axe.run(document, { runOnly: { type: 'tag', values: tags },"
        " iframes: false })).violations",
        WCAG_AA,
    )
    return [v for v in result if v["impact"] in BLOCKING]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['impact']} {v['id']}: {v['help']}")
        for node in v["nodes"][:6]:
            lines.append(f"    {node['target']} {node['failureSummary'].splitlines()[-1].strip()}")
    return "\n".join(lines)


class Findings:
    """Every page is checked before the test fails, so one run lists them all."""

    def __init__(self) -> None:
        self.reports: list[str] = []

    def check(self, where: Page | Frame, label: str) -> None:
        found = axe_violations(where)
        if found:
            self.reports.append(f"{label}:\n{describe(found)}")


def drawn(where: Page | Frame) -> None:
    expect(where.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)


def test_main_pages_have_no_serious_accessibility_violations(session: E2ESession) -> None:
    findings = Findings()
    assert_accessible = findings.check
    visitor = session.new_context("visitor").new_page()
    visitor.goto("/login")
    expect(visitor.locator("input[name=username]")).to_be_visible()
    assert_accessible(visitor, "sign-in")

    page = session.person("north.path", viewport={"width": 1366, "height": 768})
    page.goto("/")
    expect(page.locator("text=S26-1").first).to_be_visible(timeout=TIMEOUT_MS)
    assert_accessible(page, "worklist")

    page.goto(f"/cases/{session.case_id}")
    drawn(page)
    assert_accessible(page, "case page")

    page.goto(f"/meetings/{session.breast_mdt()}/room")
    expect(page.locator("#room-link")).to_have_text("Live", timeout=TIMEOUT_MS)
    page.locator("#next").click()
    expect_case_on_screen(page, 1, "S26-1")
    drawn(case_frame(page))
    assert_accessible(page, "meeting room")
    assert_accessible(case_frame(page), "meeting room, the case inside it")

    session.start_teaching(page)
    drawn(page)
    assert_accessible(page, "teaching, educator")
    code = page.locator("#join-code").inner_text()

    student = session.new_context("student").new_page()
    student.goto("/join")
    assert_accessible(student, "teaching, join")
    student.locator("input[name=code]").fill(code.lower())
    student.locator("input[name=name]").fill("Ann")
    with student.expect_navigation():
        student.locator("form.join button[type=submit]").click()
    drawn(student)
    assert_accessible(student, "teaching, student")
    assert not findings.reports, "\n".join(findings.reports)
