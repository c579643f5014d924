"""JPEG helpers: splicing stored tiles into standalone files, encoding pixels."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import simplejpeg
from PIL import Image

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
# APP14 "Adobe" segment with transform 0: the scan holds RGB, not YCbCr. Without it
# decoders would colour-convert Aperio's RGB-colourspace tiles into false colours.
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"

# Quality 80 with 4:2:0 chroma: what slide scanners themselves store, and the
# fastest libjpeg-turbo setting (about 0.2 ms for a 256 px tile here).
JPEG_QUALITY = 80
JPEG_SUBSAMPLING = "420"


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


def with_height(header: bytes, rows: int) -> bytes:
    """A JPEG header (SOI up to and including SOS) whose frame says ``rows`` rows."""
    position = 2
    while position + 4 <= len(header):
        marker = header[position + 1]
        length = int.from_bytes(header[position + 2 : position + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):  # start of frame: precision, height, width, ...
            return header[: position + 5] + rows.to_bytes(2, "big") + header[position + 7 :]
        position += 2 + length
    raise ValueError("no start-of-frame segment in the JPEG header")


def mark_rgb(jpeg: bytes) -> bytes:
    """Label a JPEG that its container says holds RGB as such, for decoders that only read markers.

    Some DICOM writers store RGB scans behind a JFIF marker, which tells decoders
    to convert from YCbCr; the JFIF segment is replaced by an Adobe one. Others label
    YCbCr scans "RGB": a scan with subsampled chroma is YCbCr whatever the label says
    (nobody halves the red and blue of an RGB scan), and is left as it is.
    """
    if not jpeg.startswith(SOI):
        raise ValueError("not a JPEG stream")
    if chroma_subsampled(jpeg):
        return jpeg
    body = jpeg[2:]
    if body.startswith(b"\xff\xee"):
        return jpeg
    if body.startswith(b"\xff\xe0"):
        body = body[2 + int.from_bytes(body[2:4], "big") :]
    return SOI + ADOBE_RGB + body


def chroma_subsampled(jpeg: bytes) -> bool:
    """Whether a three-component JPEG's second and third components are sampled less often
    than its first (4:2:0, 4:2:2): the mark of a YCbCr scan."""
    position = 2
    while position + 4 <= len(jpeg) and jpeg[position] == 0xFF:
        marker = jpeg[position + 1]
        length = int.from_bytes(jpeg[position + 2 : position + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            count = jpeg[position + 9] if position + 9 < len(jpeg) else 0
            factors = [
                jpeg[position + 11 + 3 * k] for k in range(count) if position + 12 + 3 * k <= len(jpeg)
            ]
            return count == 3 and len(factors) == 3 and factors[0] != factors[1] and factors[1] == factors[2]
        if marker == 0xDA:  # start of scan, and no frame header before it
            return False
        position += 2 + length
    return False


def decode_half(jpeg: bytes) -> np.ndarray | None:
    """RGB pixels of a JPEG at half resolution, or None when a side is odd.

    libjpeg-turbo scales in the DCT domain: about half the work of a full decode,
    and within a tenth of a grey level of a 2x2 box filter over the full image.
    """
    height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    if width % 2 or height % 2:
        return None
    half = simplejpeg.decode_jpeg(jpeg, colorspace="RGB", min_width=width // 2, min_height=height // 2)
    return np.asarray(half)


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    """Encode RGB pixels (height, width, 3) as ``jpeg`` or ``png``."""
    if fmt == "jpeg":
        return bytes(
            imagecodecs.jpeg8_encode(
                np.ascontiguousarray(pixels), level=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING
            )
        )
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
