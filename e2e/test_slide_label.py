"""Label and macro images in the viewer: beside each slide in the picker and in the slide's
info panel for those who may see patient identifiers; never for a student, who is told why,
and whose browser never asks for them."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Request, expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS
from tests.conftest import add_slides, add_user, collab, write_fake_svs


def test_label_and_macro_for_the_clinical_team_never_students(session: E2ESession, tmp_path: Path) -> None:
    (svs,) = add_slides(session.data_dir, write_fake_svs(tmp_path / "block-a1.svs"))
    add_user(session.data_dir, "north.student", "student", "North Trust", "--name", "A Student")
    shared = collab(
        "cases", "share", "S26-1", "--user", "north.student", "--read-only", data_dir=session.data_dir
    )
    assert shared.returncode == 0, shared.stderr

    page = session.person("north.path", viewport={"width": 1366, "height": 768})
    page.goto(f"/cases/{session.case_id}?slide={svs}")
    expect(page.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    # The picker: a label only beside the slide whose file has one.
    strip_label = page.locator(f".slide-strip a[data-slide-id='{svs}'] img.strip-label")
    expect(strip_label).to_have_attribute("alt", "Label of slide 3", timeout=TIMEOUT_MS)
    expect(page.locator(".slide-strip img.strip-label")).to_have_count(1)
    assert strip_label.evaluate("(img) => img.complete && img.naturalWidth") == 120
    info = page.locator("#slide-info")
    expect(info.locator("dl")).to_contain_text("1,024 × 1,024 px")
    expect(info.locator("dl")).to_contain_text("20×")
    for name, width in (("label", 120), ("macro", 300)):
        image = info.locator(f"figure.associated-{name} img")
        expect(image).to_be_visible()
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        assert image.evaluate("(img) => img.naturalWidth") == width
    expect(info.locator(".withheld")).to_be_hidden()
    # A slide without a label shows none, and says nothing is withheld.
    page.locator(f".slide-strip a[data-slide-id='{session.slide_ids[0]}']").click()
    expect(info.locator("dl")).to_contain_text("0.250 µm/px", timeout=TIMEOUT_MS)
    expect(info.locator("figure")).to_have_count(0)

    student = session.person("north.student")
    asked: list[str] = []
    student.on("request", lambda request: _note(asked, request))
    student.goto(f"/cases/{session.case_id}?slide={svs}")
    expect(student.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(student.locator("#slide-info dl")).to_contain_text("1,024 × 1,024 px", timeout=TIMEOUT_MS)
    expect(student.locator("#slide-info .withheld")).to_be_visible()
    expect(student.locator("#slide-info figure, .slide-strip img.strip-label")).to_have_count(0)
    assert not asked, f"a student's browser asked for identifying images: {asked}"
    # And the server refuses them anyway.
    refused = student.request.get(f"/slides/{svs}/associated/label.jpeg")
    assert refused.status == 403


def _note(asked: list[str], request: Request) -> None:
    if "/associated/" in request.url:
        asked.append(request.url)
