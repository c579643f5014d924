"""Every Deep Zoom tile, at every level, against openslide-python's DeepZoomGenerator.

Same geometry (our DZI's TileSize and Overlap, whole slide, limit_bounds=False):
tile sizes must be equal. Pixels: PNG tiles (lossless) within a mean absolute
difference of 4 per channel; JPEG tiles within 4 plus what the JPEG codec itself
costs on that tile at our quality setting (measured by putting the reference tile
through the same encoder), so only resampling and codec rounding may differ.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collab.slides import open_slide
from collab.slides.cache import SizedLRU
from collab.slides.deepzoom import DeepZoomSlide
from collab.slides.jpeg import encode
from tests.conftest import REAL_SLIDES, real_slide, write_pyramid_tiff

openslide = pytest.importorskip("openslide")
deepzoom = pytest.importorskip("openslide.deepzoom")

MAX_MAD = 4.0


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def _openslide_path(path: Path) -> str:
    # openslide opens a DICOM series from any one of its files.
    return str(sorted(path.glob("*.dcm"))[0]) if path.is_dir() else str(path)


def _compare_all_tiles(path: Path, *, same_source_only: bool = False) -> int:
    """Compare every tile; returns how many were compared."""
    ours = DeepZoomSlide("test", path, open_slide(path, SizedLRU(256 << 20)))
    osr = openslide.OpenSlide(_openslide_path(path))
    reference = deepzoom.DeepZoomGenerator(osr, ours.tile_size, ours.overlap, limit_bounds=False)
    our_downsamples = [level.downsample for level in ours.reader.levels]
    assert reference.level_count == ours.geometry.level_count
    assert reference.level_dimensions == ours.geometry.z_dimensions
    assert reference.level_tiles == ours.geometry.t_dimensions
    failures = []
    compared = 0
    for z_level in range(reference.level_count):
        t_cols, t_rows = reference.level_tiles[z_level]
        for t_row in range(t_rows):
            for t_col in range(t_cols):
                if same_source_only:
                    _, os_level, _ = reference.get_tile_coordinates(z_level, (t_col, t_row))
                    if not any(abs(osr.level_downsamples[os_level] - d) < 1e-6 for d in our_downsamples):
                        continue
                compared += 1
                expected_image = reference.get_tile(z_level, (t_col, t_row)).convert("RGB")
                expected = np.asarray(expected_image).astype(np.int16)
                png = _decode(ours.tile(z_level, t_col, t_row, "png"))
                jpeg = _decode(ours.tile(z_level, t_col, t_row, "jpeg"))
                where = f"level {z_level} tile {t_col}_{t_row}"
                if png.shape != expected.shape or jpeg.shape != expected.shape:
                    failures.append(f"{where}: size {png.shape}/{jpeg.shape}, openslide {expected.shape}")
                    continue
                png_mad = float(np.abs(png - expected).mean())
                codec_cost = float(
                    np.abs(_decode(encode(np.asarray(expected_image), "jpeg")) - expected).mean()
                )
                jpeg_mad = float(np.abs(jpeg - expected).mean())
                if png_mad > MAX_MAD:
                    failures.append(f"{where}: PNG differs by {png_mad:.2f}")
                if jpeg_mad > MAX_MAD + codec_cost:
                    failures.append(f"{where}: JPEG differs by {jpeg_mad:.2f} (codec alone {codec_cost:.2f})")
    assert not failures, "\n".join(failures[:20])
    return compared


# DICOM slides are compared where both readers use the same pyramid levels; see
# test_dicom_tiles_vs_openslide for why the smallest levels differ.
TIFF_SLIDES = [name for name in REAL_SLIDES if not name.startswith("dicom")]


@pytest.mark.parametrize("name", TIFF_SLIDES)
def test_real_slide_tiles_match_openslide(name: str) -> None:
    _compare_all_tiles(real_slide(name))


@pytest.mark.parametrize(
    ("l0_width", "l0_height", "tile", "compression"),
    [
        (1000, 777, 256, "jpeg"),  # odd sizes, native tiles served as stored
        (1531, 1023, 240, "jpeg"),
        (700, 1300, 128, "zlib"),  # not JPEG: every tile decoded and encoded
        (600, 500, 512, "jpeg"),  # one tile larger than the whole of lower levels
    ],
)
def test_generated_slide_tiles_match_openslide(
    tmp_path: Path, l0_width: int, l0_height: int, tile: int, compression: str
) -> None:
    path = write_pyramid_tiff(
        tmp_path / "generated.tiff", l0_width, l0_height, tile=tile, compression=compression
    )
    _compare_all_tiles(path)


@pytest.mark.parametrize("name", ["dicom-boxes"])
def test_dicom_tiles_vs_openslide(name: str) -> None:
    """DICOM through wsidicom against openslide's DICOM reader.

    Not the converted CMU sample: its frames are YCbCr JPEG (JFIF, 4:2:0) labelled "RGB", which
    openslide believes (openslide PR #558) and draws in false colours; we show the colours of
    the scan it came from (tests/test_dicom_colour.py compares it with that SVS).

    wsidicom leaves out pyramid levels whose scale is not a power of two (the
    single-frame 277 px and smaller levels of the converted CMU sample), so
    openslide draws the smallest Deep Zoom levels from those while we scale down
    the smallest level wsidicom offers. Tiles drawn from the same level on both
    sides must match; the others are different pictures by design.
    """
    compared = _compare_all_tiles(real_slide(name), same_source_only=True)
    assert compared >= 5
