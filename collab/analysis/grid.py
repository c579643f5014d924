"""The cell grid laid over a slide, and reading a slide at a chosen scale in bounded blocks.

Scales are integers: level-0 pixels per pixel of the image read (``l0_per_px``). A slide's own
levels are used where they fit, then reduced by box means, so the same scale means the same
µm per pixel on any pyramid, and thresholds carry over between slides.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from collab.analysis.base import SlideView, rgb, slide_mpp

_BLOCK_PX = 2048  # level pixels read at once: bounded memory, few calls


@dataclass(frozen=True)
class Grid:
    """Square cells over level 0, and the two scales analyses read at: the overview (whole slide,
    ~8 µm/px) and the detail (~1 µm/px, where focus can be judged)."""

    l0_width: int
    l0_height: int
    mpp: float  # µm per level-0 pixel, as stated or assumed
    mpp_stated: bool
    l0_per_overview_px: int
    overview_px_per_cell: int

    @classmethod
    def for_slide(cls, slide: SlideView, *, cell_um: float, overview_um: float, assumed_mpp: float) -> Grid:
        """The grid for a slide: cells ``cell_um`` across, overview pixels ``overview_um``,
        both rounded to powers of two in level-0 pixels."""
        l0_width, l0_height = slide.dimensions
        stated = slide_mpp(slide)
        mpp = stated if stated is not None else assumed_mpp
        scale = _power_of_two(overview_um / mpp)
        while scale > 1 and scale > min(l0_width, l0_height):  # a tiny slide still gets one pixel
            scale //= 2
        per_cell = max(1, round(cell_um / (mpp * scale)))
        return cls(l0_width, l0_height, mpp, stated is not None, scale, per_cell)

    @property
    def l0_cell_px(self) -> int:
        return self.l0_per_overview_px * self.overview_px_per_cell

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of cells; the last row and column may reach past the slide."""
        cell = self.l0_cell_px
        return -(-self.l0_height // cell), -(-self.l0_width // cell)

    def detail_scale(self, detail_um: float) -> int:
        """Level-0 pixels per detail pixel near ``detail_um``, dividing a cell evenly."""
        scale = min(_power_of_two(detail_um / self.mpp), self.l0_per_overview_px)
        while self.l0_cell_px % scale:
            scale //= 2
        return scale

    def cell_means(self, values: np.ndarray) -> np.ndarray:
        """Mean per cell of an overview-scale map (padded past the slide with NaN, ignored)."""
        rows, cols = self.shape
        k = self.overview_px_per_cell
        padded = np.full((rows * k, cols * k), np.nan, np.float32)
        h, w = min(values.shape[0], rows * k), min(values.shape[1], cols * k)
        padded[:h, :w] = values[:h, :w]
        blocks = padded.reshape(rows, k, cols, k)
        count = np.sum(~np.isnan(blocks), axis=(1, 3))
        total = np.nansum(blocks, axis=(1, 3))
        return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)


def _power_of_two(x: float) -> int:
    return 1 << max(0, round(math.log2(max(x, 1.0))))


def level_for_scale(slide: SlideView, l0_per_px: int) -> tuple[int, int]:
    """The coarsest level no coarser than the scale, and the integer box reduction from it."""
    level = 0
    for i, downsample in enumerate(slide.level_downsamples):
        if downsample <= l0_per_px * 1.01 and downsample > slide.level_downsamples[level]:
            level = i
    reduce = max(1, round(l0_per_px / slide.level_downsamples[level]))
    return level, reduce


def box_reduce(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each factor x factor block (a ragged edge dropped), float32."""
    if factor == 1:
        return pixels.astype(np.float32)
    h, w = pixels.shape[0] // factor, pixels.shape[1] // factor
    out = np.zeros((h, w, *pixels.shape[2:]), np.float32)
    # Strided slices added up: 8x faster than a mean over the axes of a reshape.
    for dy in range(factor):
        for dx in range(factor):
            out += pixels[dy : h * factor : factor, dx : w * factor : factor]
    return out * np.float32(1.0 / (factor * factor))


def read_scaled(slide: SlideView, l0_per_px: int, x: int, y: int, width: int, height: int) -> np.ndarray:
    """RGB float32 (height, width, 3) at a scale; (x, y, width, height) in pixels of that scale.

    Only what lies inside the slide is read (tiffslide pads outside with black, which would
    look like ink); the rest is left as white glass.
    """
    level, reduce = level_for_scale(slide, l0_per_px)
    downsample = slide.level_downsamples[level]
    level_w, level_h = slide.level_dimensions[level]
    out = np.full((height, width, 3), 255.0, np.float32)
    # In level pixels, the part of the request inside the level, whole reduce-blocks only.
    lx0, ly0 = x * reduce, y * reduce
    lx1 = min((x + width) * reduce, level_w // reduce * reduce)
    ly1 = min((y + height) * reduce, level_h // reduce * reduce)
    step = _BLOCK_PX // reduce * reduce
    for by in range(ly0, ly1, step):
        for bx in range(lx0, lx1, step):
            bw, bh = min(step, lx1 - bx), min(step, ly1 - by)
            # ceil: tiffslide floors location / downsample, which a non-integer downsample
            # (2.0005) would otherwise push one pixel up or left.
            location = (math.ceil(bx * downsample - 1e-6), math.ceil(by * downsample - 1e-6))
            pixels = rgb(slide.read_region(location, level, (bw, bh), as_array=True))
            small = box_reduce(pixels, reduce)
            oy, ox = (by - ly0) // reduce, (bx - lx0) // reduce
            out[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    return out


def scaled_size(slide: SlideView, l0_per_px: int) -> tuple[int, int]:
    """(width, height) of the whole slide at a scale."""
    level, reduce = level_for_scale(slide, l0_per_px)
    level_w, level_h = slide.level_dimensions[level]
    return max(1, level_w // reduce), max(1, level_h // reduce)


def runs(row: np.ndarray) -> Iterator[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        yield int(start), int(stop)
