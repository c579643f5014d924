"""Slides side by side, in step, live: the presenter opens two slides of the case side by side,
lines the second up with an offset and a rotation, and pans; a follower gets the same layout,
and each of their views matches the presenter's within one screen pixel. Pointers show on the
slide they are over, in whichever cell shows it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, click_tool, open_case

SIZE = {"width": 1366, "height": 768}


def views(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("window.collab.compare.views()"))


def off_by_px(a: dict[str, Any], b: dict[str, Any]) -> float:
    """How far apart two views of one slide are, in screen pixels of ``b``'s viewer."""
    assert a["slide"] == b["slide"], (a, b)
    per_px = b["width"] / b["cssWidth"]  # level-0 pixels per screen pixel
    centre = max(abs(a["x"] - b["x"]), abs(a["y"] - b["y"])) / per_px
    edge = abs(a["width"] - b["width"]) / per_px / 2  # each edge moves by half a width change
    return max(centre, edge)


def in_step(presenter: Page, follower: Page) -> None:
    """Every cell of the follower within a screen pixel of the presenter's."""
    want = views(presenter)
    try:
        follower.wait_for_function(
            """(want) => {
              const got = window.collab.compare.views();
              return got.length === want.length && got.every((g, i) => {
                const w = want[i], px = w.width / w.cssWidth;
                return g.slide === w.slide && Math.abs(g.rotation - w.rotation) < 0.01
                  && Math.abs(g.x - w.x) / px <= 1 && Math.abs(g.y - w.y) / px <= 1
                  && Math.abs(g.width - w.width) / px / 2 <= 1;
              });
            }""",
            arg=want,
            timeout=TIMEOUT_MS,
        )
    except PlaywrightTimeout:
        raise AssertionError(f"follower {views(follower)} never matched presenter {want}") from None
    got = views(follower)
    assert views(presenter) == want, "the presenter's view moved while the follower was checked"
    worst = max(off_by_px(g, w) for g, w in zip(got, want, strict=True))
    print(f"side by side: worst cell {worst:.3f} screen px from the presenter's")
    assert worst <= 1


def settled(page: Page) -> None:
    """Every view unchanged for twelve animation frames (a wheel's zoom starts a frame or two
    after the event, then animates for some hundred milliseconds)."""
    page.wait_for_function(
        """() => new Promise((ok) => {
          const seen = () => JSON.stringify(window.collab.compare.views());
          let last = seen(), still = 0;
          const frame = () => {
            const now = seen();
            still = now === last ? still + 1 : 0;
            last = now;
            if (still >= 12) ok(true); else requestAnimationFrame(frame);
          };
          requestAnimationFrame(frame);
        })""",
        timeout=TIMEOUT_MS,
    )


def test_side_by_side_follows_within_a_pixel_per_slide(session: E2ESession) -> None:
    presenter = session.person("north.path", viewport=SIZE)
    follower = session.person("north.trainee", viewport=SIZE)
    presenter_id = open_case(presenter, session)
    open_case(follower, session)
    presenter.locator("#present").click()
    follower.locator(f"#presence li[data-client-id='{presenter_id}'] button.follow").click(timeout=TIMEOUT_MS)

    # Side by side: H&E (the main slide) and the second slide beside it.
    click_tool(presenter, "#compare-toggle")
    cell = presenter.locator(".viewer-cell")
    expect(cell).to_have_count(1)
    expect(cell.locator("canvas").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(follower.locator(".viewer-cell")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(follower.locator(f".viewer-cell[data-slide-id='{session.slide_ids[1]}']")).to_have_count(1)

    # Line the second slide up: Align, drag it alone, lock; then turn it a quarter.
    cell.locator("button.align").click()
    box = cell.bounding_box()
    assert box is not None
    presenter.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    presenter.mouse.down()
    presenter.mouse.move(box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2 + 40, steps=6)
    presenter.mouse.up()
    cell.locator("button.align").click()
    cell.locator("button.rotate-right").click()
    offset = presenter.evaluate("window.collab.compare.cells[0].offset")
    assert abs(offset["dx"]) > 1 and offset["rotation"] == 90, offset
    settled(presenter)
    in_step(presenter, follower)

    # The presenter pans and zooms in the main slide: both cells move, for both of them.
    presenter.locator("#viewer").hover()
    presenter.mouse.wheel(0, -500)
    settled(presenter)
    in_step(presenter, follower)
    presenter.mouse.move(500, 400)
    presenter.mouse.down()
    presenter.mouse.move(380, 330, steps=8)
    presenter.mouse.up()
    settled(presenter)
    in_step(presenter, follower)
    # A pan from the second slide moves the grid too.
    box = cell.bounding_box()
    assert box is not None
    presenter.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    presenter.mouse.down()
    presenter.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2 + 20, steps=8)
    presenter.mouse.up()
    settled(presenter)
    in_step(presenter, follower)

    # The follower's pointer over the second slide shows there for the presenter.
    fbox = follower.locator(".viewer-cell").bounding_box()
    assert fbox is not None
    follower.mouse.move(fbox["x"] + fbox["width"] / 2, fbox["y"] + fbox["height"] / 2)
    follower.mouse.move(fbox["x"] + fbox["width"] / 2 + 10, fbox["y"] + fbox["height"] / 2 + 5)
    expect(cell.locator(".remote-pointer:not([hidden])")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(presenter.locator("#viewer .remote-pointer:not([hidden])")).to_have_count(0)

    # Back to one slide, for the follower too.
    click_tool(presenter, "#compare-toggle")
    expect(follower.locator(".viewer-cell")).to_have_count(0, timeout=TIMEOUT_MS)
