"""Screenshots for the README, taken from the demo in real Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/images]

Starts `collab demo` on a temporary data dir, signs in a consultant in the north and a
second-opinion pathologist in the south on the same case, presents, draws, talks, and
saves what the presenter sees (live-session.png) and the worklist (worklist.png); an
oncologist who missed it replays it (timeline.png); a second opinion is asked of the
south (second-opinion.png); three students join the demo's teaching session and answer a
quiz (teaching.png); then the demo's Breast MDT runs in its meeting room and the chair's
screen is saved (mdt-meeting.png); the coordinator's agenda builder and the People page, at
1366 x 768 (mdt-agenda.png, people.png). `--only NAME` takes one alone.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402

PASSWORD = "collab-demo-2026"
CHROMIUM = Path("/usr/bin/chromium")


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("form.login button[type=submit]").click()


def until(page: Page, predicate: str, timeout_s: float = 30) -> None:
    """Wait until ``predicate`` (a JS function) is true in the page. Playwright's
    ``wait_for_function`` evaluates a string inside the page, which our CSP forbids (no
    ``unsafe-eval``); ``evaluate`` goes through the debugger protocol instead."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout_s} s: {predicate}")
        page.wait_for_timeout(50)


def open_case(page: Page, url: str, case_id: str) -> None:
    page.goto(f"{url}/cases/{case_id}")
    expect(page.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=30_000)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)


def at(page: Page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    return box["x"] + x, box["y"] + y


def live_session(browser: Browser, url: str, case_id: str, out: Path) -> None:
    """The worklist, and a live session of two pathologists as the presenter sees it."""
    size = {"width": 1440, "height": 1000}
    north = browser.new_context(viewport=size, device_scale_factor=1).new_page()
    south = browser.new_context(viewport=size, device_scale_factor=1).new_page()
    sign_in(north, url, "north.path")
    until(north, "() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)")
    north.screenshot(path=out / "worklist.png")
    sign_in(south, url, "south.path")
    open_case(north, url, case_id)
    open_case(south, url, case_id)

    north.locator("#present").click()
    south_id = south.evaluate("window.collab.awareness.clientID")
    north_id = north.evaluate("window.collab.awareness.clientID")
    south.locator(f"#presence li[data-client-id='{north_id}'] button.follow").click()
    slide = north.evaluate("window.collab.slideView.slideId")
    view = {"slide": slide, "x": 21000, "y": 15500, "width": 9000, "rotation": 0}
    north.evaluate("(view) => window.collab.slideView.goTo(view, true)", view)
    # A polygon round a focus, labelled; a ruler across it; a message about it.
    north.locator("[data-tool=polygon]").click()
    for x, y in [(330, 210), (520, 170), (640, 300), (590, 460), (390, 470), (300, 340)]:
        north.mouse.click(*at(north, x, y))
    north.mouse.click(*at(north, 330, 210))
    north.locator("#annotation-editor [name=label]").fill("Invasive carcinoma, NST")
    north.locator("#annotation-editor [name=label]").press("Enter")
    north.locator("[data-tool=line]").click()
    north.mouse.move(*at(north, 260, 560))
    north.mouse.down()
    north.mouse.move(*at(north, 610, 560), steps=5)
    north.mouse.up()
    north.locator("[data-tool=select]").click()
    north.locator("#annotation-list li[data-kind=polygon] button").click()
    north.locator("#message-form textarea").fill("Grade 2 on this core; margins not assessable.")
    north.locator("#message-form [name=about]").check()
    north.locator("#message-form button[type=submit]").click()
    expect(south.locator("#messages li.message")).to_have_count(1)
    south.locator("#message-form textarea").fill("Agree. ER/PR/HER2 on block A1, please.")
    south.locator("#message-form button[type=submit]").click()
    expect(north.locator("#messages li.message")).to_have_count(2)
    south.mouse.move(*at(south, 560, 380))
    expect(north.locator(f".remote-pointer[data-client-id='{south_id}']")).to_be_visible()
    north.mouse.move(*at(north, 900, 600))
    north.screenshot(path=out / "live-session.png")
    for page in (north, south):
        page.context.close()  # out of the case, so the meeting room starts with nobody in it


def catch_up(browser: Browser, url: str, case_id: str, out: Path) -> None:
    """After the live session: an oncologist who missed it replays it with the timeline."""
    page = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1).new_page()
    sign_in(page, url, "north.onc")
    open_case(page, url, case_id)
    page.locator("#timeline-toggle").click()
    drawn = page.locator("#timeline .events li[data-kind=annotation]")
    expect(drawn.first).to_be_visible(timeout=30_000)
    drawn.last.locator("button").click()
    page.mouse.move(5, 995)
    page.screenshot(path=out / "timeline.png")
    page.context.close()


def second_opinion(browser: Browser, url: str, db_path: Path, out: Path) -> None:
    """North asks South for an opinion; South's worklist opens with the request."""
    with sqlite3.connect(db_path) as db:
        (case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'DEMO-24-0102'").fetchone()
    size = {"width": 1440, "height": 900}
    north = browser.new_context(viewport=size, device_scale_factor=1).new_page()
    sign_in(north, url, "north.path")
    north.goto(f"{url}/cases/{case_id}")
    ask = north.locator("form.opinion-form")
    ask.locator("input[name=to]").fill("south.path")
    ask.locator("textarea[name=question]").fill("Lobular or ductal? E-cadherin is equivocal on slide 1.")
    ask.locator("input[name=urgent]").check()
    with north.expect_navigation():
        ask.locator("button[type=submit]").click()
    south = browser.new_context(viewport=size, device_scale_factor=1).new_page()
    sign_in(south, url, "south.path")
    expect(south.locator(".opinion-requests tr[data-opinion-id]")).to_have_count(1)
    until(south, "() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)")
    south.screenshot(path=out / "second-opinion.png")
    for page in (north, south):
        page.context.close()


def teaching(browser: Browser, url: str, db_path: Path, out: Path) -> None:
    """The demo's teaching session: two students joined by code, a quiz revealed, as a student sees it."""
    with sqlite3.connect(db_path) as db:
        session_id, code = db.execute("SELECT id, code FROM teaching_sessions").fetchone()
    size = {"width": 1440, "height": 1000}
    educator = browser.new_context(viewport=size, device_scale_factor=1).new_page()
    sign_in(educator, url, "north.path")
    educator.goto(f"{url}/teach/{session_id}")
    expect(educator.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=30_000)
    students = []
    for name in ("Aisha", "Ben", "Chloe"):
        page = browser.new_context(viewport=size, device_scale_factor=1).new_page()
        page.goto(f"{url}/join/{code}")
        page.locator("input[name=name]").fill(name)
        with page.expect_navigation():
            page.locator("form.join button[type=submit]").click()
        expect(page.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=30_000)
        students.append(page)
    expect(educator.locator("#students li")).to_have_count(3, timeout=30_000)
    slide = educator.evaluate("window.collab.slideView.slideId")
    educator.evaluate(
        "(slide) => window.collab.slideView.goTo({slide, x: 21000, y: 15500, width: 12000, rotation: 0})",
        slide,
    )
    educator.locator("#quiz-form input[name=question]").fill("Click the most atypical nucleus")
    educator.locator("#quiz-form button[type=submit]").click()
    for n, page in enumerate(students):
        expect(page.locator("#quiz-banner .question")).to_have_text("Click the most atypical nucleus")
        page.mouse.click(*at(page, 520 + 40 * n, 360 + 25 * (n % 2)))
        expect(page.locator(".quiz-scatter .my-answer")).to_have_count(1, timeout=30_000)
    expect(educator.locator("#quiz-count")).to_have_text("3 answered", timeout=30_000)
    educator.locator("#reveal").click()
    expect(students[0].locator(".quiz-scatter .answer")).to_have_count(3, timeout=30_000)
    students[0].mouse.move(5, 995)
    students[0].screenshot(path=out / "teaching.png")
    for page in (educator, *students):
        page.context.close()


def mdt_meeting(browser: Browser, url: str, db_path: Path, out: Path) -> None:
    """The demo's Breast MDT in the meeting room, as the chair sees it: the first case on screen,
    flown to a region bookmarked before the meeting, the coordinator's outcome recorded."""
    with sqlite3.connect(db_path) as db:
        (meeting_id,) = db.execute("SELECT id FROM meetings WHERE name = 'Breast MDT'").fetchone()
        (case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'DEMO-24-0101'").fetchone()
    size = {"width": 1440, "height": 1000}
    chair, coordinator, oncologist = (
        browser.new_context(viewport=size, device_scale_factor=1).new_page() for _ in range(3)
    )
    for page, username in ((chair, "north.path"), (coordinator, "admin"), (oncologist, "north.onc")):
        sign_in(page, url, username)
    # Before the meeting: a region of interest, bookmarked for the MDT.
    open_case(chair, url, case_id)
    view = {"slide": chair.evaluate("window.collab.slideView.slideId"), "x": 21000, "y": 15500}
    chair.evaluate("(view) => window.collab.slideView.goTo({...view, width: 16000, rotation: 0}, true)", view)
    chair.locator("[data-tool=rect]").click()
    chair.mouse.move(*at(chair, 380, 250))
    chair.mouse.down()
    chair.mouse.move(*at(chair, 560, 400), steps=5)
    chair.mouse.up()
    chair.locator("#annotation-editor [name=label]").fill("Invasive carcinoma, NST")
    chair.locator("#annotation-editor [name=label]").press("Enter")
    chair.locator("#annotation-editor [name=bookmark]").check()
    chair.locator("[data-tool=select]").click()

    room = f"{url}/meetings/{meeting_id}/room"
    for page in (chair, coordinator, oncologist):
        page.goto(room)
        expect(page.locator("#room-link")).to_have_text("Live", timeout=30_000)
    chair.locator("#next").click()
    frame = chair.frame_locator("#case-frame")
    expect(frame.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=30_000)
    frame.locator("#regions button").first.click()
    form = coordinator.locator("#outcome-form")
    form.get_by_role("checkbox", name="surgery", exact=True).check()
    form.locator("textarea[name=notes]").fill(
        "Wide local excision and sentinel node biopsy; ER/PR/HER2 to follow."
    )
    form.get_by_role("button", name="Record outcome").click()
    expect(chair.locator("#now-outcome")).to_contain_text("Outcome: surgery", timeout=30_000)
    expect(oncologist.frame_locator("#case-frame").locator("#viewer")).to_have_attribute(
        "data-first-tile", "drawn", timeout=30_000
    )
    until(
        chair,
        "() => { const f = document.querySelector('#case-frame').contentWindow;"
        " const vp = f.collab && f.collab.viewer.viewport;"
        " return vp && Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-6; }",
    )
    chair.mouse.move(5, 995)
    chair.screenshot(path=out / "mdt-meeting.png")


def coordinator(browser: Browser, url: str, db_path: Path, out: Path) -> None:
    """What the MDT coordinator prepares with a browser only, at a laptop's 1366 x 768: the
    Breast MDT's page with its agenda builder, a case search under way; and the People page."""
    with sqlite3.connect(db_path) as db:
        (meeting_id,) = db.execute("SELECT id FROM meetings WHERE name = 'Breast MDT'").fetchone()
    page = browser.new_context(viewport={"width": 1366, "height": 768}, device_scale_factor=1).new_page()
    sign_in(page, url, "admin")
    page.goto(f"{url}/meetings/{meeting_id}")
    adder = page.locator("form[data-agenda-add]")
    adder.locator("[data-case-search]").fill("DEMO")
    expect(adder.locator("[data-case-results] li").first).to_be_visible(timeout=30_000)
    adder.locator("[data-case-results] button").first.click()
    adder.locator("textarea[name=question]").fill("Suitable for breast-conserving surgery?")
    page.mouse.move(5, 5)
    # The whole page, from the meeting's heading to the form, at the laptop's width.
    page.screenshot(path=out / "mdt-agenda.png", full_page=True)
    page.goto(f"{url}/admin/users")
    expect(page.locator("table.people")).to_be_visible()
    page.screenshot(path=out / "people.png")
    page.context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument(
        "--only",
        choices=["live-session", "timeline", "second-opinion", "teaching", "mdt-meeting", "coordinator"],
        help="take only this one (timeline needs live-session first)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collab-screens-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "collab", "demo", "--data-dir", tmp, "--port", str(port)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        try:
            assert server.stderr is not None
            for line in server.stderr:
                if b"Uvicorn running on" in line:
                    break
            else:
                raise SystemExit("the demo server did not start")
            with sqlite3.connect(Path(tmp) / "collab.sqlite3") as db:
                (case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'DEMO-24-0101'").fetchone()
            with sync_playwright() as playwright:
                launch: dict[str, object] = {"args": ["--no-sandbox"] if os.geteuid() == 0 else []}
                if CHROMIUM.exists():
                    launch["executable_path"] = str(CHROMIUM)
                browser = playwright.chromium.launch(**launch)  # type: ignore[arg-type]
                db_path = Path(tmp) / "collab.sqlite3"
                shots = {
                    "live-session": lambda: live_session(browser, url, case_id, args.out),
                    "timeline": lambda: catch_up(browser, url, case_id, args.out),
                    "second-opinion": lambda: second_opinion(browser, url, db_path, args.out),
                    "teaching": lambda: teaching(browser, url, db_path, args.out),
                    "mdt-meeting": lambda: mdt_meeting(browser, url, db_path, args.out),
                    "coordinator": lambda: coordinator(browser, url, db_path, args.out),
                }
                for name, take in shots.items():
                    if args.only in (None, name):
                        take()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)
    print(f"saved the screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
