"""AI analysis results over the slide, in real Chromium: an outside tool posts a result (a score,
a flag, a heatmap and GeoJSON regions) through the write API; the case page lists it with the
tool named, draws its layer exactly over the cells at the chosen opacity and colour map, flies
to its regions; a presenter's layers reach a follower; a student sees them, and nothing else."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image
from playwright.sync_api import Page, expect

from e2e.conftest import E2ESession
from e2e.test_accessibility import axe_violations, describe
from e2e.test_session import TIMEOUT_MS, open_case, settled_view
from tests.conftest import add_user, api_token, collab

# The first e2e slide is 4000 x 3000: 256-pixel cells make a grid of 16 x 12.
CELL, COLS, ROWS = 256, 16, 12
SQUARE = [[512, 256], [1280, 256], [1280, 768], [512, 768], [512, 256]]


def _png(values: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(values).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def post_result(session: E2ESession, *, label: str = "tumour", tool: str = "Test Vendor AI") -> dict:
    """The outside tool's result for the first slide, as the API answered it."""
    cells = np.zeros((ROWS, COLS), dtype=np.uint8)
    cells[1:3, 2:5] = 255
    cells[6:10, 8:14] = 160
    body = {
        "tool": tool,
        "analysis": "tumour-finder",
        "version": "3.2",
        "scores": {"tumour likelihood": 0.93},
        "flags": [{"name": "urgent review suggested", "reason": "tumour likely in 2 areas"}],
        "heatmaps": [
            {
                "name": "tumour",
                "legend": "tumour probability",
                "level0_cell_px": CELL,
                "image_base64": _png(cells),
            }
        ],
        "regions": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                    "properties": {"label": label, "score": 0.97},
                }
            ],
        },
    }
    token = {"Authorization": f"Bearer {api_token(session.data_dir, 'north.path')}"}
    posted = session.server.client.post(
        f"/api/slides/{session.slide_ids[0]}/analyses", json=body, headers=token
    )
    assert posted.status_code == 201, posted.text
    return dict(posted.json())


def layer_of(page: Page, result_id: int):  # noqa: ANN201 (a Playwright locator)
    return page.locator(f"#overlays article[data-result-id='{result_id}'] li.ai-layer").first


def heatmap_on(page: Page, opacity: str) -> None:
    """Wait until exactly one layer image is over the slide, loaded, at this opacity."""
    image = page.locator("#viewer .ai-layers img.ai-heatmap")
    expect(image).to_have_count(1, timeout=TIMEOUT_MS)
    expect(image).to_have_css("opacity", opacity, timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => { const i = document.querySelector('#viewer img.ai-heatmap');"
        " return i && i.complete && i.naturalWidth; }",
        timeout=TIMEOUT_MS,
    )


def corners_match(page: Page) -> None:
    """The layer image's corners lie on the grid's corners on screen (within a pixel)."""
    page.wait_for_function(
        """([cell, cols, rows]) => {
            const img = document.querySelector('#viewer img.ai-heatmap');
            const box = img.getBoundingClientRect();
            const at = document.querySelector('#viewer').getBoundingClientRect();
            const [x0, y0] = window.collab.overlay.toScreen(0, 0);
            const [x1, y1] = window.collab.overlay.toScreen(cols * cell, rows * cell);
            const near = (a, b) => Math.abs(a - b) < 1;
            return near(box.left - at.left, Math.min(x0, x1)) && near(box.top - at.top, Math.min(y0, y1))
                && near(box.right - at.left, Math.max(x0, x1)) && near(box.bottom - at.top, Math.max(y0, y1));
        }""",
        arg=[CELL, COLS, ROWS],
        timeout=TIMEOUT_MS,
    )


def test_an_outside_tools_result_is_listed_drawn_over_the_slide_and_flown_to(session: E2ESession) -> None:
    found = post_result(session)
    page = session.person("north.path")
    open_case(page, session)
    panel = page.locator("#overlays")
    expect(panel).to_be_visible(timeout=TIMEOUT_MS)
    result = panel.locator(f"article[data-result-id='{found['id']}']")
    expect(result.locator("h3")).to_have_text("tumour-finder 3.2")
    expect(result.locator(".provenance")).to_contain_text("from Test Vendor AI (outside tool)")
    expect(result.locator(".ai-notice")).to_have_text(
        "Decision support from software, not a diagnosis: a person decides."
    )
    expect(result.locator(".flags")).to_have_text("urgent review suggested: tumour likely in 2 areas")
    expect(result.locator(".scores")).to_contain_text("tumour likelihood")
    expect(result.locator(".scores")).to_contain_text("0.93")

    # Off until asked for; on, it is drawn over its cells at the chosen opacity.
    layer = layer_of(page, found["id"])
    expect(page.locator("#viewer img.ai-heatmap")).to_have_count(0)
    expect(layer.locator(".legend-text")).to_have_text("tumour probability")
    layer.get_by_label("Show the layer tumour over the slide").check()
    layer.get_by_label("Opacity of tumour").fill("50")
    heatmap_on(page, "0.5")
    assert page.evaluate("document.querySelector('#viewer img.ai-heatmap').naturalWidth") == COLS
    assert page.locator("#viewer img.ai-heatmap").evaluate("(i) => getComputedStyle(i).imageRendering") == (
        "pixelated"
    )
    corners_match(page)
    # It stays on its cells through a zoom and a rotation.
    page.locator("#viewer").hover()
    page.mouse.wheel(0, -500)
    settled_view(page)
    corners_match(page)
    page.locator("#rotate-right").click()
    settled_view(page)
    corners_match(page)

    # Another colour map: the server draws it; the legend shows the same scale.
    ramp_before = layer.locator(".ramp").evaluate("(r) => getComputedStyle(r).backgroundImage")
    layer.get_by_label("Colour map of tumour").select_option("magma")
    expect(page.locator("#viewer img.ai-heatmap")).to_have_attribute(
        "src", f"/slides/{session.slide_ids[0]}/analyses/{found['id']}/layers/0.png?colours=magma"
    )
    assert layer.locator(".ramp").evaluate("(r) => getComputedStyle(r).backgroundImage") != ramp_before

    # A region, marked as the AI's, flies the viewer there and is outlined, dashed.
    go = result.locator("button.ai-region-go")
    expect(go.locator(".badge")).to_have_text("AI")
    go.click()
    page.wait_for_function(
        """() => { const v = window.collab.slideView.view();
            return Math.abs(v.x - 896) < 20 && Math.abs(v.y - 512) < 20
                && Math.abs(v.width - 768 * 2.5) < 40; }""",
        timeout=TIMEOUT_MS,
    )
    outline = page.locator("#viewer .ai-region polygon")
    expect(outline).to_have_count(1)
    # Redrawn on every frame: looked up and read in one go.
    dashes = page.evaluate(
        "getComputedStyle(document.querySelector('#viewer .ai-region polygon')).strokeDasharray"
    )
    assert dashes not in ("none", ""), dashes
    expect(page.locator("#viewer .ai-region text")).to_have_text("AI · tumour")

    # Another slide has no results: the panel goes, and so do the layer and the outline.
    page.locator(f".slide-strip a[data-slide-id='{session.slide_ids[1]}']").click()
    expect(panel).to_be_hidden(timeout=TIMEOUT_MS)
    expect(page.locator("#viewer img.ai-heatmap, #viewer .ai-region")).to_have_count(0)
    page.locator(f".slide-strip a[data-slide-id='{session.slide_ids[0]}']").click()
    heatmap_on(page, "0.5")

    # A colour map not on the list is refused, not guessed.
    image = f"/slides/{session.slide_ids[0]}/analyses/{found['id']}/layers/0.png"
    assert page.request.get(f"{image}?colours=rainbow").status == 422
    assert page.request.get(f"{image}?colours=magma").status == 200

    # A result that arrives later (an analysis job done) shows on reload(), the layer kept on.
    later = post_result(session, tool="Second Tool")
    page.evaluate("window.collab.overlays.reload()")
    expect(panel.locator(f"article[data-result-id='{later['id']}'] .provenance")).to_contain_text(
        "Second Tool"
    )
    heatmap_on(page, "0.5")


def test_a_follower_sees_the_presenters_layers_and_gets_their_own_back(session: E2ESession) -> None:
    found = post_result(session)
    presenter = session.person("north.path")
    follower = session.person("north.trainee")
    presenter_id = open_case(presenter, session)
    open_case(follower, session)

    # The follower has chosen their own look first.
    layer_of(follower, found["id"]).get_by_label("Show the layer tumour over the slide").check()
    layer_of(follower, found["id"]).get_by_label("Colour map of tumour").select_option("greys")
    heatmap_on(follower, "0.7")

    presenter.locator("#present").click()
    follower.locator(f"#presence li[data-client-id='{presenter_id}'] button.follow").click(timeout=TIMEOUT_MS)
    # Following someone who presents no layer: none shown, the follower's own kept aside.
    expect(follower.locator("#viewer img.ai-heatmap")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(follower.locator("#overlays .following-note")).to_contain_text("Dr North")

    mine = layer_of(presenter, found["id"])
    mine.get_by_label("Show the layer tumour over the slide").check()
    mine.get_by_label("Opacity of tumour").fill("40")
    mine.get_by_label("Colour map of tumour").select_option("magma")
    heatmap_on(presenter, "0.4")
    heatmap_on(follower, "0.4")
    expect(follower.locator("#viewer img.ai-heatmap")).to_have_attribute(
        "src", f"/slides/{session.slide_ids[0]}/analyses/{found['id']}/layers/0.png?colours=magma"
    )
    theirs = layer_of(follower, found["id"])
    expect(theirs.get_by_label("Opacity of tumour")).to_have_value("40")
    expect(theirs.get_by_label("Opacity of tumour")).to_be_disabled()
    # The presenter outlines the regions: so does the follower.
    presenter.locator(f"#overlays article[data-result-id='{found['id']}'] input[name=outline]").check()
    expect(follower.locator("#viewer .ai-region polygon")).to_have_count(1, timeout=TIMEOUT_MS)

    # What arrives is checked: a bad opacity, an unknown colour map or an id that is not a whole
    # number shows nothing (and builds no address).
    for bad in (
        {"result": found["id"], "layer": 0, "opacity": 5, "colours": "magma"},
        {"result": found["id"], "layer": 0, "opacity": 0.4, "colours": "constructor"},
        {"result": f"{found['id']}/../../x", "layer": 0, "opacity": 0.4, "colours": "magma"},
        {"result": found["id"], "layer": 0.5, "opacity": 0.4, "colours": "magma"},
    ):
        presenter.evaluate("(bad) => window.collab.presence.out.set('layers', [bad])", bad)
        expect(follower.locator("#viewer img.ai-heatmap")).to_have_count(0, timeout=TIMEOUT_MS)
    presenter.evaluate("() => window.collab.presence.out.set('layers', 'not a list')")
    # Not a list at all: as if the presenter showed nothing, so the follower's own come back.
    heatmap_on(follower, "0.7")

    # Once they stop following, their own choices are back.
    presenter.locator("#stop-presenting").click()
    follower.locator(f"#presence li[data-client-id='{presenter_id}'] button.follow").click()
    heatmap_on(follower, "0.7")
    expect(follower.locator("#viewer img.ai-heatmap")).to_have_attribute(
        "src", f"/slides/{session.slide_ids[0]}/analyses/{found['id']}/layers/0.png?colours=greys"
    )
    expect(follower.locator("#viewer .ai-region")).to_have_count(0)
    expect(layer_of(follower, found["id"]).get_by_label("Opacity of tumour")).to_be_enabled()


def test_a_student_sees_the_layers_and_nothing_identifying(session: E2ESession) -> None:
    hostile = "<img src=x onerror=window.pwned=1>"
    found = post_result(session, label=hostile, tool="<b>Vendor</b>")
    add_user(session.data_dir, "north.student", "student", "North Trust", "--name", "A Student")
    shared = collab(
        "cases", "share", "S26-1", "--user", "north.student", "--read-only", data_dir=session.data_dir
    )
    assert shared.returncode == 0, shared.stderr

    student = session.person("north.student", viewport={"width": 1366, "height": 768})
    student.goto(f"/cases/{session.case_id}")
    expect(student.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    answer = student.request.get(f"/api/slides/{session.slide_ids[0]}/analyses")
    assert answer.status == 200
    (result,) = answer.json()
    # What the API gives is the analysis's own: nothing of the case or the patient.
    assert set(result) == {
        "id", "name", "version", "source", "made", "parameters",
        "scores", "flags", "layers", "regions", "notice",
    }  # fmt: skip
    assert "S26-1" not in json.dumps(result)

    article = student.locator(f"#overlays article[data-result-id='{found['id']}']")
    expect(article.locator(".provenance")).to_contain_text("from <b>Vendor</b>", timeout=TIMEOUT_MS)
    expect(article.locator("button.ai-region-go .title")).to_have_text(hostile)
    expect(article.locator(".provenance b, .ai-region-go img")).to_have_count(0)
    layer_of(student, found["id"]).get_by_label("Show the layer tumour over the slide").check()
    heatmap_on(student, "0.7")
    article.locator("input[name=outline]").check()
    expect(student.locator("#viewer .ai-region text")).to_have_text(f"AI · {hostile}")
    assert student.evaluate("window.pwned") is None
    # The panel, a layer on and regions outlined, meets WCAG AA (labels, contrast).
    violations = axe_violations(student)
    assert not violations, describe(violations)
