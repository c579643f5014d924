"""A pathologist uploads a slide of over a gigabyte in the browser, loses the page half-way,
chooses the file again and the upload carries on from where the server had got to; then the
slide opens in the viewer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from playwright.sync_api import expect

from e2e.conftest import E2ESession

TILE = 512
# 18,432 x 18,432 RGB, uncompressed: 1.02 GB at level 0, plus three smaller levels.
L0_TILES = 36


def _tiles(pool: list[np.ndarray], count: int) -> Iterator[np.ndarray]:
    for number in range(count):
        yield pool[number % len(pool)]


@pytest.fixture(scope="session")
def gigabyte_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid pyramidal TIFF of over 1 GB, written tile by tile (never all in memory)."""
    path = tmp_path_factory.mktemp("e2e-upload") / "big-scan.tiff"
    rng = np.random.default_rng(7)
    # A few random tiles, repeated: uncompressed, so the size is the pixels' whatever they show.
    pool = [rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8) for _ in range(7)]
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for number, tiles_across in enumerate((L0_TILES, L0_TILES // 4, L0_TILES // 12, 1)):
            side = tiles_across * TILE
            tif.write(
                _tiles(pool, tiles_across * tiles_across),
                shape=(side, side, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                photometric="rgb",
                compression=None,
                subfiletype=1 if number else 0,
            )
    assert path.stat().st_size > 1 << 30
    return path


def test_a_large_upload_resumes_after_a_reload_and_opens_in_the_viewer(
    session: E2ESession, gigabyte_slide: Path
) -> None:
    page = session.person("north.path")
    page.goto(f"/cases/{session.case_id}")
    page.get_by_role("link", name="Upload slides").click()
    expect(page.locator("#upload-case")).to_have_value(session.case_id)
    page.locator("#upload-file").set_input_files(gigabyte_slide)
    page.get_by_role("button", name="Upload").click()

    # The bar moves; a fifth of the way in, the page is reloaded (the connection is dropped).
    page.wait_for_function("() => document.getElementById('upload-progress').value >= 20", timeout=60000)
    upload_url = page.locator("#upload-status").get_attribute("data-upload-url")
    assert upload_url
    page.reload()
    at_resume = page.request.get(upload_url).json()
    assert at_resume["state"] == "receiving"
    assert at_resume["offset"] > 0  # the server kept what arrived

    page.locator("#upload-file").set_input_files(gigabyte_slide)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_attribute("data-resumed", "true")
    # Carrying on, not starting again: the bar starts at least where the server had got to.
    first_shown = page.wait_for_function(
        "() => { const v = document.getElementById('upload-progress').value; return v > 0 && v; }",
        timeout=30000,
    ).json_value()
    assert first_shown >= int(100 * at_resume["offset"] / at_resume["length"])
    expect(page.locator("#upload-done")).to_be_visible(timeout=180000)
    expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    assert page.request.get(upload_url).json()["state"] == "done"  # the same upload finished

    page.get_by_role("link", name="Open the slide").click()
    viewer = page.locator("#viewer")
    slide_id = viewer.get_attribute("data-slide-id")
    assert slide_id and slide_id not in session.slide_ids
    expect(viewer).to_have_attribute("data-first-tile", "drawn", timeout=30000)
