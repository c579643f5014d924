"""The slide routes of a real server: exact payloads, caching headers, bad addresses."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collab.slides import open_slide
from collab.slides.cache import SizedLRU
from collab.slides.deepzoom import DeepZoomSlide
from tests.conftest import (
    Server,
    add_slides,
    real_slide,
    seed_case,
    signed_in,
    start_server,
    stop_server,
    write_pyramid_tiff,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that only read; each test that changes things has its own."""
    data_dir = tmp_path_factory.mktemp("data")
    seed_case(data_dir)
    running = start_server(data_dir)
    yield signed_in(running, "north.path")
    stop_server(running)


@pytest.fixture(scope="module")
def generated(shared: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    path = write_pyramid_tiff(tmp_path_factory.mktemp("slides") / "slide.tiff", 1000, 777, tile=256)
    [slide_id] = add_slides(shared.data_dir, path)
    return slide_id, path


@pytest.fixture(scope="module")
def cmu(shared: Server) -> str:
    [slide_id] = add_slides(shared.data_dir, real_slide("CMU-1-Small-Region.svs"))
    return slide_id


def test_healthz(shared: Server) -> None:
    response = shared.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_metadata_json(shared: Server, generated: tuple[str, Path]) -> None:
    slide_id, _ = generated
    response = shared.get(f"/api/slides/{slide_id}")
    assert response.status_code == 200
    assert response.json() == {
        "id": slide_id,
        "width": 1000,
        "height": 777,
        "mpp_x": None,
        "mpp_y": None,
        "objective_power": None,
        "vendor": "generic-tiff",
        "levels": [
            {"width": 1000, "height": 777, "downsample": 1.0},
            {"width": 500, "height": 389, "downsample": pytest.approx(1.9987146529562982)},
            {"width": 250, "height": 195, "downsample": pytest.approx(3.9923076923076923)},
        ],
        "associated": [],
        "tile_size": 256,
        "overlap": 0,
    }


def test_real_slide_metadata(shared: Server, cmu: str) -> None:
    slide_id = cmu
    body = shared.get(f"/api/slides/{slide_id}").json()
    assert (body["width"], body["height"]) == (2220, 2967)
    assert (body["mpp_x"], body["mpp_y"], body["objective_power"]) == (0.499, 0.499, 20.0)
    assert body["vendor"] == "aperio"
    assert sorted(body["associated"]) == ["label", "macro", "thumbnail"]
    assert (body["tile_size"], body["overlap"]) == (240, 0)
    assert "path" not in body and str(REAL_PATH_HINT) not in str(body)


REAL_PATH_HINT = "shared/slides"


def test_dzi(shared: Server, generated: tuple[str, Path]) -> None:
    slide_id, _ = generated
    response = shared.get(f"/slides/{slide_id}.dzi")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    assert response.text == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpeg" Overlap="0" TileSize="256">'
        '<Size Width="1000" Height="777"/></Image>\n'
    )


def test_tiles_over_http_equal_the_renderer(shared: Server, generated: tuple[str, Path]) -> None:
    slide_id, path = generated
    local = DeepZoomSlide(slide_id, path, open_slide(path, SizedLRU(64 << 20)))
    top = local.geometry.level_count - 1
    for z_level, t_col, t_row in [(top, 0, 0), (top, 3, 3), (top - 1, 1, 1), (0, 0, 0)]:
        for fmt, media_type in (("jpeg", "image/jpeg"), ("png", "image/png")):
            response = shared.get(f"/slides/{slide_id}_files/{z_level}/{t_col}_{t_row}.{fmt}")
            assert response.status_code == 200
            assert response.headers["content-type"] == media_type
            assert response.content == local.tile(z_level, t_col, t_row, fmt)


def test_native_tile_is_sent_as_stored(shared: Server, cmu: str) -> None:
    path = real_slide("CMU-1-Small-Region.svs")
    slide_id = cmu
    response = shared.get(f"/slides/{slide_id}_files/12/2_3.jpeg")
    pixels = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    reader = open_slide(path, SizedLRU(64 << 20))
    expected = reader.read_region(0, 2 * 240, 3 * 240, 240, 240).astype(int)
    assert pixels.shape == (240, 240, 3)
    # Decoded by Pillow from the spliced bytes, by tifffile from the file: same decoder family.
    assert np.abs(pixels - expected).mean() < 0.5


def test_etag_and_not_modified(shared: Server, generated: tuple[str, Path]) -> None:
    slide_id, _ = generated
    url = f"/slides/{slide_id}_files/10/1_1.jpeg"
    first = shared.get(url)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.headers["cache-control"] == "private, max-age=31536000, immutable"
    again = shared.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = shared.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert other.content == first.content
    png = shared.get(url.replace(".jpeg", ".png"))
    assert png.headers["etag"] != etag


def test_thumbnail(shared: Server, generated: tuple[str, Path]) -> None:
    slide_id, _ = generated
    response = shared.get(f"/slides/{slide_id}/thumbnail.jpeg", params={"max": "200"})
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (200, 155)
    default = shared.get(f"/slides/{slide_id}/thumbnail.jpeg")
    assert Image.open(io.BytesIO(default.content)).size == (512, 398)
    for bad in ("0", "-5", "abc", "99999", "1e3", ""):
        response = shared.get(f"/slides/{slide_id}/thumbnail.jpeg", params={"max": bad})
        assert response.status_code == 400, bad
        assert "max must be" in response.text


def test_associated_images(shared: Server, cmu: str) -> None:
    slide_id = cmu
    sizes = {}
    for name in ("label", "macro", "thumbnail"):
        response = shared.get(f"/slides/{slide_id}/associated/{name}.jpeg")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "image/jpeg"
        sizes[name] = Image.open(io.BytesIO(response.content)).size
    assert sizes == {"label": (387, 463), "macro": (1280, 431), "thumbnail": (574, 768)}
    missing = shared.get(f"/slides/{slide_id}/associated/overview.jpeg")
    assert missing.status_code == 404
    assert missing.text == "This slide has no overview image.\n"


BAD_TILE_ADDRESSES = [
    "{id}_files/99/0_0.jpeg",  # level above the pyramid
    "{id}_files/10/4_0.jpeg",  # column past the edge
    "{id}_files/10/0_4.jpeg",  # row past the edge
    "{id}_files/10/-1_0.jpeg",
    "{id}_files/-1/0_0.jpeg",
    "{id}_files/x/0_0.jpeg",
    "{id}_files/10/a_b.jpeg",
    "{id}_files/10/0_0.gif",
    "{id}_files/10/0_0",
    "{id}_files/10/0_0.jpeg.png",
    "{id}_files/10/1.5_0.jpeg",
    "{id}_files/10/ 0_0.jpeg",
    "{id}_files/10/0_0.JPEG",
    "{id}_files/99999999999999999999/0_0.jpeg",
    "{id}_files/10/99999999999999999999_0.jpeg",
    "{id}_files/10/0_0.jpeg/extra",
    "{id}_files/10",
    "{id}_files/",
    "{id}.dzi.png",
    "{id}/associated/..%2F..%2Fetc%2Fpasswd.jpeg",
    "{id}/associated/label.png",
    "0000000000000000.dzi",  # well-formed id, never registered
    "0000000000000000_files/0/0_0.jpeg",
    "nonsense.dzi",
    "nonsense_files/0/0_0.jpeg",
    "..%2F..%2F..%2Fetc%2Fpasswd.dzi",
    "%2Fetc%2Fpasswd_files/0/0_0.jpeg",
    "....//....//etc/passwd",
    "{id}_files/10/..%2F..%2F..%2F0_0.jpeg",
]


@pytest.mark.parametrize("template", BAD_TILE_ADDRESSES)
def test_bad_slide_addresses_are_404(shared: Server, generated: tuple[str, Path], template: str) -> None:
    slide_id, _ = generated
    response = shared.get("/slides/" + template.format(id=slide_id))
    assert response.status_code == 404, response.text
    assert len(response.content) < 200
    assert b"Traceback" not in response.content


TRAVERSALS = [
    "/slides/../../../../etc/passwd",
    "/slides/%2e%2e/%2e%2e/etc/passwd",
    "/static/../collab.sqlite3",
    "/static/..%2f..%2fcollab.sqlite3",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/api/slides/..%2F..%2Fetc%2Fpasswd",
    "/api/slides/%00",
    "/api/slides/' OR 1=1 --",
    "/collab.sqlite3",
    "/shared.log",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_attempts_get_4xx(shared: Server, path: str) -> None:
    response = shared.client.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert b"root:" not in response.content
    assert b"SQLite format" not in response.content


def test_api_errors_are_problem_json(shared: Server) -> None:
    response = shared.get("/api/slides/0000000000000000")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
    assert response.json()["detail"] == "No such slide."


def test_slide_that_goes_bad_answers_503_and_others_keep_working(server: Server, tmp_path: Path) -> None:
    good = write_pyramid_tiff(tmp_path / "good.tiff", 600, 500, tile=256)
    doomed = write_pyramid_tiff(tmp_path / "doomed.tiff", 600, 500, tile=256, seed=1)
    good_id, doomed_id = add_slides(server.data_dir, good, doomed)
    assert server.get(f"/slides/{doomed_id}.dzi").status_code == 200
    # The file is truncated behind the server's back, after it was opened.
    data = doomed.read_bytes()
    doomed.write_bytes(data[: len(data) // 3])
    response = server.get(f"/slides/{doomed_id}_files/10/1_1.png")
    assert response.status_code == 503
    assert "cannot be read" in response.text
    # A slide whose file disappeared before it was ever opened.
    missing = write_pyramid_tiff(tmp_path / "missing.tiff", 300, 300, tile=256, seed=2)
    [missing_id] = add_slides(server.data_dir, missing)
    missing.unlink()
    response = server.get(f"/slides/{missing_id}.dzi")
    assert response.status_code == 503
    assert response.text == "The slide cannot be read: the slide file is missing\n"
    # Everyone else is still served.
    assert server.get(f"/slides/{good_id}_files/10/1_1.jpeg").status_code == 200
    assert server.get("/healthz").status_code == 200


def test_replaced_file_gets_new_etags(server: Server, tmp_path: Path) -> None:
    path = write_pyramid_tiff(tmp_path / "a.tiff", 600, 500, tile=256)
    [slide_id] = add_slides(server.data_dir, path)
    etag = server.get(f"/slides/{slide_id}_files/10/0_0.jpeg").headers["etag"]
    # A fresh server (as after a restart) sees the replaced file.
    shutil.copy(write_pyramid_tiff(tmp_path / "b.tiff", 600, 500, tile=256, seed=3), path)
    stop_server(server)
    restarted = signed_in(start_server(server.data_dir), "north.path")
    try:
        assert restarted.get(f"/slides/{slide_id}_files/10/0_0.jpeg").headers["etag"] != etag
    finally:
        stop_server(restarted)
