"""Load image codecs before the first request needs them."""

from __future__ import annotations

import contextlib

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

from collab.slides.jpeg import encode

# TIFF compressions of the slide formats we read: JPEG, Deflate, LZW, Aperio JPEG 2000.
TIFF_COMPRESSIONS = (7, 8, 5, 32946, 33003, 33005)


def warm_up_codecs() -> None:
    """Import and initialise codecs now: their first use costs milliseconds per codec."""
    pixels = np.full((16, 16, 3), 200, np.uint8)
    imagecodecs.jpeg8_decode(encode(pixels, "jpeg"))
    encode(pixels, "png")
    for compression in TIFF_COMPRESSIONS:
        # A codec this build lacks fails later, only for the slides that need it.
        with contextlib.suppress(KeyError, ValueError):
            tifffile.TIFF.DECOMPRESSORS[compression]
    image = Image.fromarray(pixels)
    image.reduce(2)
    image.resize((8, 8), Image.Resampling.LANCZOS, box=(0.5, 0.5, 15.5, 15.5), reducing_gap=2.0)
