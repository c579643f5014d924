"""Slide readers on generated files whose every pixel is known."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from collab.slides import SlideError, open_slide
from collab.slides.cache import SizedLRU
from collab.slides.deepzoom import DeepZoomSlide


def _pixels(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _open(path: Path) -> DeepZoomSlide:
    return DeepZoomSlide("test", path, open_slide(path, SizedLRU(64 << 20)))


def test_ome_tiff_pyramid_in_subifds(tmp_path: Path) -> None:
    level0 = _pixels(700, 500)
    levels = [level0, level0[::2, ::2], level0[::4, ::4]]
    path = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(levels[0], subifds=2, tile=(256, 256), compression="zlib", photometric="rgb")
        for level in levels[1:]:
            tif.write(level, subfiletype=1, tile=(256, 256), compression="zlib", photometric="rgb")
    slide = _open(path)
    assert [(lv.width, lv.height) for lv in slide.reader.levels] == [(700, 500), (350, 250), (175, 125)]
    for number, level in enumerate(levels):
        assert np.array_equal(slide.reader.read_region(number, 0, 0, level.shape[1], level.shape[0]), level)
    # The top Deep Zoom level is the full image, one to one.
    top = slide.geometry.level_count - 1
    tile = np.asarray(Image.open(io.BytesIO(slide.tile(top, 1, 1, "png"))))
    assert np.array_equal(tile, level0[256:500, 256:512])


def test_greyscale_and_strips(tmp_path: Path) -> None:
    grey = _pixels(300, 200)[..., 0]
    path = tmp_path / "grey.tif"
    tifffile.imwrite(path, grey, rowsperstrip=16, compression="zlib")  # strips, not tiles
    slide = _open(path)
    region = slide.reader.read_region(0, 10, 20, 50, 40)
    assert region.shape == (40, 50, 3)
    assert np.array_equal(region[..., 1], grey[20:60, 10:60])
    # Outside the image is white, inside is the image.
    edge = slide.reader.read_region(0, 290, 190, 20, 20)
    assert np.array_equal(edge[:10, :10, 0], grey[190:, 290:])
    assert (edge[10:, :] == 255).all() and (edge[:, 10:] == 255).all()


def test_half_resolution_reads_match_a_box_filter(tmp_path: Path) -> None:
    level0 = _pixels(1024, 768)
    path = tmp_path / "lossless.tif"
    tifffile.imwrite(path, level0, tile=(256, 256), compression="zlib", photometric="rgb")
    reader = open_slide(path, SizedLRU(64 << 20))
    half = reader.read_region_half(0, 256, 128, 512, 512)
    expected = level0[128:640, 256:768].reshape(256, 2, 256, 2, 3).astype(np.uint16).sum(axis=(1, 3))
    assert np.abs(half.astype(int) - (expected + 2) // 4).max() <= 1


def test_sixteen_bit_slides_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16), tile=(32, 32))
    with pytest.raises(SlideError, match="only 8-bit RGB or greyscale slides are supported"):
        open_slide(path, SizedLRU(1 << 20))


def test_not_a_slide(tmp_path: Path) -> None:
    path = tmp_path / "notes.pdf"
    path.write_bytes(b"%PDF-1.7 not a slide")
    with pytest.raises(SlideError, match="not a whole-slide image collab can read"):
        open_slide(path, SizedLRU(1 << 20))
