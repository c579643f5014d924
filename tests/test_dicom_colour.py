"""JPEG frames whose container calls them RGB but whose scan is YCbCr (a JFIF marker and
subsampled chroma, as some DICOM converters write them) show the slide's true colours: the
label is believed only where the scan could hold RGB."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collab.slides import open_slide
from collab.slides.cache import SizedLRU
from collab.slides.jpeg import chroma_subsampled, mark_rgb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "slides"
DICOM = SHARED / "dicom-cmu-1-small-region"
SVS = SHARED / "CMU-1-Small-Region.svs"  # the scan the DICOM series was converted from


def _jpeg(subsampling: int) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(7)
    pixels = np.clip(rng.normal((200, 120, 170), 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95, subsampling=subsampling)
    return pixels, out.getvalue()


def test_a_subsampled_scan_labelled_rgb_is_decoded_as_ycbcr() -> None:
    pixels, jpeg = _jpeg(subsampling=2)  # 4:2:0
    assert chroma_subsampled(jpeg)
    assert mark_rgb(jpeg) == jpeg
    decoded = np.asarray(Image.open(io.BytesIO(mark_rgb(jpeg))).convert("RGB")).astype(int)
    # Chroma is averaged over 2x2 pixels, so compare colours, not pixels.
    assert np.abs(decoded.mean(axis=(0, 1)) - pixels.mean(axis=(0, 1))).max() < 3


def test_a_full_chroma_scan_labelled_rgb_is_still_marked_rgb() -> None:
    _, jpeg = _jpeg(subsampling=0)  # 4:4:4: the label decides
    assert not chroma_subsampled(jpeg)
    assert mark_rgb(jpeg)[2:4] == b"\xff\xee"  # an Adobe segment: no colour transform


@pytest.mark.skipif(not (DICOM.is_dir() and SVS.exists()), reason="../shared/slides is not here")
def test_dicom_series_shows_the_colours_of_the_scan_it_came_from() -> None:
    dicom = open_slide(DICOM, SizedLRU(64 << 20))
    svs = open_slide(SVS, SizedLRU(64 << 20))
    try:
        assert dicom.levels[0] == svs.levels[0]
        width, height = dicom.levels[0].width, dicom.levels[0].height
        ours = dicom.read_region(0, 0, 0, width, height).astype(int)
        scan = svs.read_region(0, 0, 0, width, height).astype(int)
        assert np.abs(ours - scan).mean() < 8  # the converter re-encoded it: not bit-equal
        # The frames of the right and bottom edges too (part of them lies past the image).
        tile_w, tile_h = dicom.l0_chunk_size
        edge_x, edge_y = (width // tile_w) * tile_w, (height // tile_h) * tile_h
        assert np.abs(ours[:, edge_x:] - scan[:, edge_x:]).mean() < 8
        assert np.abs(ours[edge_y:] - scan[edge_y:]).mean() < 8
        # A stored frame sent as it is (to a browser, which reads the JPEG's own markers).
        frame = dicom.native_jpeg(0, 2 * tile_w, 2 * tile_h, tile_w, tile_h)
        assert frame is not None
        shown = np.asarray(Image.open(io.BytesIO(frame)).convert("RGB")).astype(int)
        scan = svs.read_region(0, 2 * tile_w, 2 * tile_h, tile_w, tile_h).astype(int)
        assert np.abs(shown - scan).mean() < 8
    finally:
        dicom.close()
        svs.close()
