"""Drawing as a pathologist does it: a freehand stroke that runs off the slide into the side
panel selects no text; captions of a ruler and a region that meet at a corner do not overlap;
closed shapes give their perimeter beside their area."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, annotation_ids, at_viewer, draw_rectangle, open_case

CAPTION_BOXES = """() => [...document.querySelectorAll('#viewer text.caption')].map((t) => {
  const r = t.getBoundingClientRect();
  return { text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom };
})"""


def test_freehand_into_the_side_panel_selects_no_text(session: E2ESession) -> None:
    page = session.person("north.path", viewport={"width": 1366, "height": 768})
    open_case(page, session)
    page.locator("[data-tool=freehand]").click()
    side = page.locator("#side-panel").bounding_box()
    assert side is not None
    page.mouse.move(*at_viewer(page, 200, 300))
    page.mouse.down()
    page.mouse.move(*at_viewer(page, 400, 320), steps=8)
    # On over the side panel's text, as a hurried stroke does.
    page.mouse.move(side["x"] + side["width"] / 2, side["y"] + 200, steps=12)
    page.mouse.move(*at_viewer(page, 300, 420), steps=8)
    page.mouse.up()
    expect(page.locator("#annotation-list li[data-annotation-id]")).to_have_count(1, timeout=TIMEOUT_MS)
    selected = page.evaluate("() => String(window.getSelection())")
    assert selected == "", f"the stroke selected text: {selected!r}"


def test_ruler_and_region_captions_do_not_overlap_and_regions_give_perimeter(session: E2ESession) -> None:
    page = session.person("north.path", viewport={"width": 1366, "height": 768})
    open_case(page, session)
    draw_rectangle(page, (200, 200), (400, 350))
    expect(page.locator("#annotation-list li[data-annotation-id]")).to_have_count(1, timeout=TIMEOUT_MS)
    rect = annotation_ids(page)[0]
    page.locator("#annotation-editor [name=label]").fill("Invasive front")
    page.locator("#annotation-editor [name=label]").press("Enter")
    # A ruler from the region's corner, the way a margin is measured.
    page.locator("[data-tool=line]").click()
    page.mouse.move(*at_viewer(page, 200, 200))
    page.mouse.down()
    page.mouse.move(*at_viewer(page, 330, 190), steps=5)
    page.mouse.up()
    expect(page.locator("#annotation-list li[data-annotation-id]")).to_have_count(2, timeout=TIMEOUT_MS)
    page.locator("#annotation-editor [name=label]").fill("Margin")
    page.locator("#annotation-editor [name=label]").press("Enter")
    expect(page.locator("#viewer text.caption")).to_have_count(2, timeout=TIMEOUT_MS)
    first, second = page.evaluate(CAPTION_BOXES)
    apart = (
        first["right"] <= second["left"]
        or second["right"] <= first["left"]
        or first["bottom"] <= second["top"]
        or second["bottom"] <= first["top"]
    )
    assert apart, f"captions overlap: {first} {second}"

    about = page.locator(f"#annotation-list li[data-annotation-id='{rect}'] .meta")
    expect(about).to_have_text(re.compile(r"(mm²|µm²).*perimeter \d"), timeout=TIMEOUT_MS)
