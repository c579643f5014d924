"""The live session in real Chromium: several people (browser contexts) on one case."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from e2e.conftest import E2ESession
from tests.conftest import add_user

ARTEFACTS = Path("test-results")
TIMEOUT_MS = 15_000


def open_case(page: Page, session: E2ESession, slide: str | None = None) -> int:
    """Open the case page, wait for a drawn tile and a live connection; returns the awareness client id."""
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"/cases/{session.case_id}" + (f"?slide={slide}" if slide else ""))
    expect(page.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    return int(page.evaluate("window.collab.awareness.clientID"))


def click_tool(page: Page, selector: str) -> None:
    """Click a toolbar item, through the toolbar's "More" menu when the window is too narrow
    for it to sit on the row."""
    tool = page.locator(selector)
    if not tool.is_visible():
        page.locator(".toolbar .more > button").click()
    tool.click()


def at_viewer(page: Page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of a point given in CSS pixels inside the viewer."""
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    return box["x"] + x, box["y"] + y


def image_point(page: Page, x: float, y: float) -> list[float]:
    """Level-0 image pixels under a viewer point, as this page computes them."""
    return list(page.evaluate("([x, y]) => window.collab.overlay.toImage(x, y)", [x, y]))


def annotation_ids(page: Page) -> list[str]:
    return sorted(page.evaluate("[...window.collab.annotations.map.keys()]"))


def draw_polygon(page: Page, corners: list[tuple[float, float]]) -> None:
    page.locator("[data-tool=polygon]").click()
    for x, y in corners[:-1]:
        page.mouse.click(*at_viewer(page, x, y))
    page.mouse.dblclick(*at_viewer(page, *corners[-1]))


def draw_rectangle(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.locator("[data-tool=rect]").click()
    page.mouse.move(*at_viewer(page, *start))
    page.mouse.down()
    page.mouse.move(*at_viewer(page, *end), steps=5)
    page.mouse.up()


def same_view(page: Page, view: dict[str, float]) -> None:
    """Wait until this page looks where ``view`` says (centre and field width within 1%)."""
    page.wait_for_function(
        """(want) => {
            const v = window.collab.slideView.view();
            return v && v.slide === want.slide && Math.abs(v.rotation - want.rotation) < 0.5
                && Math.abs(v.x - want.x) < want.width / 100 && Math.abs(v.y - want.y) < want.width / 100
                && Math.abs(v.width - want.width) < want.width / 100;
        }""",
        arg=view,
        timeout=TIMEOUT_MS,
    )


def settled_view(page: Page) -> dict[str, float]:
    """The view once animations have finished."""
    page.wait_for_function(
        """() => { const vp = window.collab.viewer.viewport;
            return Math.abs(vp.getRotation(true) - vp.getRotation(false)) < 0.01
                && Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-6; }""",
        timeout=TIMEOUT_MS,
    )
    return dict(page.evaluate("window.collab.slideView.view()"))


def test_two_people_point_annotate_follow(session: E2ESession) -> None:
    a = session.person("north.path")
    b = session.person("north.trainee")
    a_id = open_case(a, session)
    open_case(b, session)

    # Presence: each sees the other with name, role and organisation.
    row = b.locator(f"#presence li[data-client-id='{a_id}']")
    expect(row).to_contain_text("Dr North", timeout=TIMEOUT_MS)
    expect(row).to_contain_text("pathologist · North Trust")

    # A's pointer appears in B at the same image coordinates.
    a.mouse.move(*at_viewer(a, 300, 200))
    want = image_point(a, 300, 200)
    pointer = b.locator(f".remote-pointer[data-client-id='{a_id}']")
    expect(pointer).to_be_visible(timeout=TIMEOUT_MS)
    expect(pointer).to_contain_text("Dr North")
    b.wait_for_function(
        """([id, x, y]) => { const p = document.querySelector(`.remote-pointer[data-client-id='${id}']`);
            return p && Math.abs(p.dataset.x - x) < 0.5 && Math.abs(p.dataset.y - y) < 0.5; }""",
        arg=[a_id, *want],
        timeout=TIMEOUT_MS,
    )

    # A draws a polygon; B sees it, and still sees it after a reload.
    draw_polygon(a, [(200, 150), (420, 170), (380, 360), (220, 330)])
    expect(a.locator("#annotation-list li[data-kind=polygon]")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(b.locator("#annotation-list li[data-kind=polygon]")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(b.locator("svg.annotation-layer g.annotation")).to_have_count(1)
    polygon = a.evaluate("window.collab.annotations.all()[0]")
    assert polygon["kind"] == "polygon" and len(polygon["points"]) == 4
    assert polygon["slide"] == session.slide_ids[0]
    b.reload()
    open_case(b, session)
    expect(b.locator("#annotation-list li[data-kind=polygon]")).to_have_count(1, timeout=TIMEOUT_MS)
    assert b.evaluate("window.collab.annotations.all()[0].points") == polygon["points"]

    # B follows A across a slide switch and a rotation.
    b.locator(f"#presence li[data-client-id='{a_id}'] button.follow").click()
    a.locator(f".slide-strip a[data-slide-id='{session.slide_ids[1]}']").click()
    expect(a.locator("#viewer")).to_have_attribute("data-slide-id", session.slide_ids[1])
    a.locator("#rotate-right").click()
    a.locator("#viewer").hover()
    a.mouse.wheel(0, -400)  # zoom in a little
    view = settled_view(a)
    assert abs(view["rotation"] - 90) < 0.5 and view["slide"] == session.slide_ids[1]
    same_view(b, view)
    expect(b.locator("#viewer")).to_have_attribute("data-slide-id", session.slide_ids[1])
    expect(b.locator(".slide-strip a[aria-current]")).to_have_attribute("data-slide-id", session.slide_ids[1])

    # B pans away: told it is off A's view, and can return.
    b.mouse.move(*at_viewer(b, 500, 400))
    b.mouse.down()
    b.mouse.move(*at_viewer(b, 350, 300), steps=5)
    b.mouse.up()
    expect(b.locator("#off-view")).to_be_visible(timeout=TIMEOUT_MS)
    expect(b.locator("#off-view")).to_contain_text("Dr North")
    b.locator("#off-view button").click()
    expect(b.locator("#off-view")).to_be_hidden()
    same_view(b, settled_view(a))

    ARTEFACTS.mkdir(exist_ok=True)
    a.screenshot(path=ARTEFACTS / "two-person-session-presenter.png")
    b.screenshot(path=ARTEFACTS / "two-person-session-follower.png")

    # A closes the tab: B sees A leave at once.
    a.close()
    expect(b.locator(f"#presence li[data-client-id='{a_id}']")).to_have_count(0, timeout=5000)


def test_three_people_one_offline_converge(session: E2ESession) -> None:
    add_user(session.data_dir, "north.path2", "pathologist", "North Trust", "--name", "Dr Second")
    a = session.person("north.path")
    b = session.person("north.trainee")
    c = session.person("north.path2")
    for page in (a, b, c):
        open_case(page, session)

    c.context.set_offline(True)
    expect(c.locator("#connection")).to_have_attribute("data-state", "disconnected", timeout=TIMEOUT_MS)
    draw_rectangle(c, (150, 150), (320, 260))
    draw_polygon(a, [(400, 150), (520, 170), (480, 300)])
    expect(c.locator("#annotation-list li")).to_have_count(1)  # only its own, while offline
    expect(b.locator("#annotation-list li[data-kind=polygon]")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(b.locator("#annotation-list li[data-kind=rect]")).to_have_count(0)

    c.context.set_offline(False)
    expect(c.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    for page in (a, b, c):
        expect(page.locator("#annotation-list li[data-annotation-id]")).to_have_count(2, timeout=TIMEOUT_MS)
    assert annotation_ids(a) == annotation_ids(b) == annotation_ids(c)


def test_server_killed_and_restarted_mid_session(session: E2ESession) -> None:
    a = session.person("north.path")
    b = session.person("north.trainee")
    open_case(a, session)
    open_case(b, session)
    draw_polygon(a, [(200, 150), (420, 170), (380, 360)])
    expect(b.locator("#annotation-list li[data-kind=polygon]")).to_have_count(1, timeout=TIMEOUT_MS)

    session.restart()
    for page in (a, b):
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    # Drawn after the restart: reaches the other page through the new server.
    draw_rectangle(b, (150, 150), (320, 260))
    for page in (a, b):
        expect(page.locator("#annotation-list li[data-annotation-id]")).to_have_count(2, timeout=TIMEOUT_MS)
    # Someone arriving now finds both, from the server.
    c = session.person("north.onc")
    open_case(c, session)
    expect(c.locator("#annotation-list li[data-annotation-id]")).to_have_count(2, timeout=TIMEOUT_MS)
    assert annotation_ids(a) == annotation_ids(b) == annotation_ids(c)
