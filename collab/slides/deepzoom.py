"""One open slide served as a Deep Zoom pyramid of encoded tiles."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from collab.slides.dicomweb import DicomWebRef
from collab.slides.geometry import DeepZoomGeometry, fitted_size
from collab.slides.jpeg import encode
from collab.slides.reader import SlideReader

# Used when the file's own tiles cannot be served as they are (strips, odd sizes).
DEFAULT_TILE_SIZE = 254
DEFAULT_OVERLAP = 1
# Bump when the rendering of tiles changes, so browsers drop what they cached.
RENDER_VERSION = "1"


def choose_tile_size(l0_chunk_size: tuple[int, int]) -> tuple[int, int]:
    """Deep Zoom (tile size, overlap): the file's own square tiles when it has them.

    Matching the native grid lets full-resolution tiles go out exactly as stored,
    without decoding and re-encoding.
    """
    width, height = l0_chunk_size
    if width == height and 128 <= width <= 1024:
        return width, 0
    return DEFAULT_TILE_SIZE, DEFAULT_OVERLAP


@dataclass(frozen=True)
class Encoded:
    """An encoded image and its entity tag."""

    body: bytes
    media_type: str
    etag: str


class DeepZoomSlide:
    """Tiles, descriptor and thumbnail of one slide; thread-safe, blocking."""

    def __init__(self, slide_id: str, path: Path | DicomWebRef, reader: SlideReader) -> None:
        self.slide_id = slide_id
        self.source = path  # where it is stored: what a tile worker opens (collab.slides.workers)
        self.reader = reader
        self.tile_size, self.overlap = choose_tile_size(reader.l0_chunk_size)
        self.geometry = DeepZoomGeometry(
            tuple((lv.width, lv.height) for lv in reader.levels),
            tuple(lv.downsample for lv in reader.levels),
            self.tile_size,
            self.overlap,
        )
        if isinstance(path, DicomWebRef):
            # A DICOM series never changes under its UID: a new scan is a new series.
            identity = f"{slide_id}:{path.text()}:{RENDER_VERSION}"
        else:
            stat = os.stat(path)
            # Slides do not change; should the file be replaced, its tags change with it.
            identity = f"{slide_id}:{stat.st_mtime_ns}:{stat.st_size}:{RENDER_VERSION}"
        self.etag_base = hashlib.blake2s(identity.encode(), digest_size=8).hexdigest()

    @property
    def width(self) -> int:
        return self.reader.levels[0].width

    @property
    def height(self) -> int:
        return self.reader.levels[0].height

    def tile_key(self, z_level: int, t_col: int, t_row: int, fmt: str) -> tuple[object, ...]:
        """The key of an encoded tile in the tile cache."""
        return (self.slide_id, self.etag_base, z_level, t_col, t_row, fmt)

    def tile_etag(self, z_level: int, t_col: int, t_row: int, fmt: str) -> str:
        return f'"{self.etag_base}-{z_level}-{t_col}-{t_row}-{fmt}"'

    def tile(self, z_level: int, t_col: int, t_row: int, fmt: str) -> bytes:
        """One encoded tile (``jpeg`` or ``png``); the address must be inside the pyramid."""
        region = self.geometry.tile_region(z_level, t_col, t_row)
        if fmt == "jpeg" and region.unscaled and self.geometry.l_z_downsamples[z_level] == 1.0:
            stored = self.reader.native_jpeg(
                region.slide_level, region.l_x, region.l_y, region.l_width, region.l_height
            )
            if stored is not None:
                return stored
        if region.unscaled:
            pixels = self.reader.read_region(
                region.slide_level, region.l_x, region.l_y, region.l_width, region.l_height
            )
            return encode(pixels, fmt)
        size = fitted_size(region.l_width, region.l_height, region.z_width, region.z_height)
        if not (region.l_frac_x or region.l_frac_y) and (region.l_width, region.l_height) == (
            2 * size[0],
            2 * size[1],
        ):
            # Halving (the common case, one Deep Zoom level below a slide level): a
            # 2x2 box filter is ten times cheaper than Lanczos and differs from it
            # by about one grey level on tissue. Larger factors keep Lanczos, where
            # a box filter starts to blur visibly.
            args = (region.slide_level, region.l_x, region.l_y, region.l_width, region.l_height)
            if all(n % 2 == 0 for n in args[1:]):
                # Cells decoded at half resolution: JPEG halves in the DCT domain.
                return encode(self.reader.read_region_half(*args), fmt)
            return encode(np.asarray(Image.fromarray(self.reader.read_region(*args)).reduce(2)), fmt)
        # One pixel more on each axis covers a sub-pixel origin.
        shifted = bool(region.l_frac_x or region.l_frac_y)
        pixels = self.reader.read_region(
            region.slide_level,
            region.l_x,
            region.l_y,
            region.l_width + shifted,
            region.l_height + shifted,
        )
        box = (
            region.l_frac_x,
            region.l_frac_y,
            region.l_frac_x + region.l_width,
            region.l_frac_y + region.l_height,
        )
        return encode(resize(pixels, *size, box=box), fmt)

    def dzi(self, fmt: str = "jpeg") -> str:
        """The Deep Zoom descriptor (XML)."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"'
            f' Format="{fmt}" Overlap="{self.overlap}" TileSize="{self.tile_size}">'
            f'<Size Width="{self.width}" Height="{self.height}"/></Image>\n'
        )

    def thumbnail(self, max_px: int) -> bytes:
        """A JPEG of the whole slide, ``max_px`` pixels on its long side."""
        scale = max_px / max(self.width, self.height)
        z_w = max(1, round(self.width * scale))
        z_h = max(1, round(self.height * scale))
        # The smallest level that still has at least the pixels asked for.
        level = 0
        for i, lv in enumerate(self.reader.levels):
            if lv.width >= z_w and lv.height >= z_h:
                level = i
        lv = self.reader.levels[level]
        pixels = self.reader.read_region(level, 0, 0, lv.width, lv.height)
        return encode(resize(pixels, z_w, z_h), "jpeg")

    def associated(self, name: str) -> bytes:
        """A stored label, macro or thumbnail image as JPEG."""
        image = self.reader.associated_image(name)
        return encode(np.asarray(image), "jpeg")

    def metadata(self) -> dict[str, Any]:
        """The slide's description for the JSON API."""
        props = self.reader.properties
        return {
            "id": self.slide_id,
            "width": self.width,
            "height": self.height,
            "mpp_x": props.mpp_x,
            "mpp_y": props.mpp_y,
            "objective_power": props.objective_power,
            "vendor": props.vendor,
            "levels": [
                {"width": lv.width, "height": lv.height, "downsample": lv.downsample}
                for lv in self.reader.levels
            ],
            "associated": list(self.reader.associated_names),
            "tile_size": self.tile_size,
            "overlap": self.overlap,
        }


def resize(
    pixels: np.ndarray,
    z_width: int,
    z_height: int,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Scale pixels (or the ``box`` of them) the way openslide's Deep Zoom generator does."""
    image = Image.fromarray(pixels).resize(
        (z_width, z_height), Image.Resampling.LANCZOS, box=box, reducing_gap=2.0
    )
    return np.asarray(image)
