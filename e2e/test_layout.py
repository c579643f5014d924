"""The room, the case page and teaching fit the screens they are used on (a 1366 x 768 laptop,
a 1920 x 1080 meeting-room display): the whole slide viewer inside the window, no scrolling
box around it, the tools on one row, the scale bar shown (in full screen too), and the side
panel folded away when asked, remembered on the next visit.

Screenshots of each page at each size go to test-results/ (the README shows some)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Frame, Page, expect

from e2e.conftest import E2ESession
from e2e.test_meeting import case_frame, expect_case_on_screen
from e2e.test_session import TIMEOUT_MS

SIZES = [(1366, 768), (1920, 1080)]
SHOTS = Path("test-results")

# Where the viewer is in its window, and every ancestor that scrolls (in its own document,
# and the frame element in the page above when it is embedded).
MEASURE = """(viewer) => {
  const scrollers = (el) => {
    const found = [];
    for (let a = el.parentElement; a; a = a.parentElement) {
      const style = getComputedStyle(a);
      const root = a === document.documentElement || a === document.body;
      const y = a.scrollHeight > a.clientHeight + 1 && (root || /auto|scroll/.test(style.overflowY));
      const x = a.scrollWidth > a.clientWidth + 1 && (root || /auto|scroll/.test(style.overflowX));
      const size = `${a.scrollWidth}x${a.scrollHeight} in ${a.clientWidth}x${a.clientHeight}`;
      if (x || y) found.push(`${a.tagName.toLowerCase()}.${a.className} ${size}`);
    }
    return found;
  };
  const r = viewer.getBoundingClientRect();
  const own = { top: r.top, left: r.left, bottom: r.bottom, right: r.right,
                width: innerWidth, height: innerHeight };
  const frame = window.frameElement;
  let outer = null;
  if (frame) {
    const f = frame.getBoundingClientRect();
    outer = { top: f.top + r.top, left: f.left + r.left, bottom: f.top + r.bottom, right: f.left + r.right,
              width: parent.innerWidth, height: parent.innerHeight, scrollers: scrollers(frame) };
  }
  const toolbar = document.querySelector('.toolbar');
  const items = [...toolbar.children]
    .filter((c) => c.offsetParent !== null && c.getBoundingClientRect().width > 0);
  const tops = items.map((c) => {
    const b = c.getBoundingClientRect();
    return Math.round(b.top + b.height / 2);
  });
  return { own, outer, scrollers: scrollers(viewer), rows: new Set(tops.map((t) => Math.round(t / 8))).size,
           toolbarHeight: toolbar.getBoundingClientRect().height, tops,
           toolbarRight: toolbar.getBoundingClientRect().right,
           itemsRight: Math.max(...items.map((c) => c.getBoundingClientRect().right)),
           where: items.map((c) => `${c.id || c.className}:${Math.round(c.getBoundingClientRect().right)}`) };
}"""


def check_fits(where: Page | Frame, label: str) -> dict[str, Any]:
    viewer = where.locator("#viewer")
    expect(viewer).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    # Layout settles after fonts and the first tile; wait until two reads a frame apart agree.
    where.wait_for_function(
        "() => new Promise((ok) => {"
        " const box = () => document.querySelector('#viewer').getBoundingClientRect();"
        " const a = box();"
        " requestAnimationFrame(() => requestAnimationFrame(() => { const b = box();"
        " ok(a.top === b.top && a.height === b.height && a.width === b.width); })); })",
        timeout=TIMEOUT_MS,
    )
    m = viewer.evaluate(MEASURE)
    box = m["outer"] or m["own"]
    assert box["top"] >= 0 and box["left"] >= 0, f"{label}: viewer starts outside the window: {box}"
    below = box["bottom"] - box["height"]
    right = box["right"] - box["width"]
    assert below <= 0.5, f"{label}: {below:.0f} px cut off below: {box}"
    assert right <= 0.5, f"{label}: {right:.0f} px cut off right: {box}"
    scrollers = m["scrollers"] + (m["outer"]["scrollers"] if m["outer"] else [])
    assert not scrollers, f"{label}: the viewer sits in scrolling boxes: {scrollers}"
    assert m["rows"] == 1, f"{label}: the tools take {m['rows']} rows (centres {m['tops']})"
    spill = m["itemsRight"] - m["toolbarRight"]
    assert spill <= 1, f"{label}: the tools run {spill:.0f} px past the toolbar's end: {m['where']}"
    expect(where.locator("#scale-bar")).to_be_visible(timeout=TIMEOUT_MS)
    return m


def check_full_screen(page: Page, where: Page | Frame, label: str) -> None:
    """Full screen keeps the scale bar and the tools, and Escape leaves it."""
    button = where.locator("#fullscreen")
    button.click()
    where.wait_for_function("() => document.fullscreenElement !== null", timeout=TIMEOUT_MS)
    expect(where.locator("#scale-bar")).to_be_visible(timeout=TIMEOUT_MS)
    expect(where.locator("#home")).to_be_visible()
    expect(where.locator("[data-tool=select]")).to_be_visible()
    in_view = where.locator("#scale-bar").evaluate(
        "(el) => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    assert in_view, f"{label}: the scale bar is outside the full-screen view"
    where.locator("#fullscreen").click()
    where.wait_for_function("() => document.fullscreenElement === null", timeout=TIMEOUT_MS)


def check_panel_remembered(page: Page, toggle: str, panel: str, viewer: Callable[[], Page | Frame]) -> None:
    """Folding the side panel widens the slide; the choice survives a reload."""
    wide_before = viewer().locator("#viewer").evaluate("(el) => el.getBoundingClientRect().width")
    page.locator(toggle).click()
    expect(page.locator(panel)).to_be_hidden()
    expect(page.locator(toggle)).to_have_attribute("aria-expanded", "false")
    viewer().wait_for_function(
        f"() => document.querySelector('#viewer').getBoundingClientRect().width > {wide_before} + 100",
        timeout=TIMEOUT_MS,
    )
    page.reload()
    expect(page.locator(panel)).to_be_hidden(timeout=TIMEOUT_MS)
    expect(page.locator(toggle)).to_have_attribute("aria-expanded", "false")


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_case_page_fits_the_screen(session: E2ESession, width: int, height: int) -> None:
    page = session.person("north.path", viewport={"width": width, "height": height})
    page.goto(f"/cases/{session.case_id}")
    label = f"case page {width}x{height}"
    check_fits(page, label)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / f"layout-case-{width}x{height}.png")
    check_full_screen(page, page, label)
    page.screenshot(path=SHOTS / f"layout-case-fullscreen-{width}x{height}.png")

    check_panel_remembered(page, "#side-toggle", ".session > .side", lambda: page)
    check_fits(page, f"{label}, panel folded")
    page.screenshot(path=SHOTS / f"layout-case-folded-{width}x{height}.png")


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_meeting_room_fits_the_screen(session: E2ESession, width: int, height: int) -> None:
    room = f"/meetings/{session.breast_mdt()}/room"
    page = session.person("north.path", viewport={"width": width, "height": height})
    page.goto(room)
    expect(page.locator("#room-link")).to_have_text("Live", timeout=TIMEOUT_MS)
    page.locator("#next").click()
    expect_case_on_screen(page, 1, "S26-1")
    frame = case_frame(page)
    label = f"meeting room {width}x{height}"
    check_fits(frame, label)
    page_fits = page.evaluate("() => document.documentElement.scrollHeight <= innerHeight + 1")
    assert page_fits, f"{label}: the page scrolls"
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / f"layout-room-{width}x{height}.png")
    check_full_screen(page, frame, label)

    check_panel_remembered(page, "#room-side-toggle", ".room-side", lambda: case_frame(page))
    expect_case_on_screen(page, 1, "S26-1")
    check_fits(case_frame(page), f"{label}, agenda folded")
    page.screenshot(path=SHOTS / f"layout-room-folded-{width}x{height}.png")


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_teaching_fits_the_screen(session: E2ESession, width: int, height: int) -> None:
    educator = session.person("north.path", viewport={"width": width, "height": height})
    educator.goto("/teaching")
    educator.locator("input[name=title]").fill("Breast pathology, year 3")
    educator.locator(f"input[name=case][value='{session.case_id}']").check()
    with educator.expect_navigation():
        educator.locator(".teaching-form button[type=submit]").click()
    label = f"teaching {width}x{height}"
    check_fits(educator, label)
    SHOTS.mkdir(exist_ok=True)
    educator.screenshot(path=SHOTS / f"layout-teaching-{width}x{height}.png")
    check_full_screen(educator, educator, label)
