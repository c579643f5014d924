"""JPEG helpers: splicing stored tiles into standalone files, encoding pixels."""

from __future__ import annotations

import io

import numpy as np
import simplejpeg
from PIL import Image

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
# APP14 "Adobe" segment with transform 0: the scan holds RGB, not YCbCr. Without it
# decoders would colour-convert Aperio's RGB-colourspace tiles into false colours.
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"

JPEG_QUALITY = 80


def splice_tables(tables: bytes | None, tile: bytes, *, rgb: bool) -> bytes:
    """A standalone JPEG from a TIFF tile and the file's shared JPEGTables."""
    if not tile.startswith(SOI):
        raise ValueError("stored tile is not a JPEG stream")
    head = SOI + (ADOBE_RGB if rgb else b"")
    body = tile[2:]
    if tables:
        # JPEGTables is its own SOI ... EOI stream of DQT/DHT segments.
        inner = tables[2:-2] if tables.endswith(EOI) else tables[2:]
        return head + inner + body
    return head + body


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    """Encode RGB pixels (height, width, 3) as ``jpeg`` or ``png``."""
    if fmt == "jpeg":
        return bytes(simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality=JPEG_QUALITY, colorspace="RGB"))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
