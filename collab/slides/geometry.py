"""Deep Zoom geometry: which slide pixels make up each Deep Zoom tile.

The arithmetic mirrors openslide-python's ``DeepZoomGenerator`` (whole slide,
``limit_bounds=False``) so that our tiles line up with the reference viewer's.
Coordinate planes are named by prefix: ``l0_`` level-0 pixels, ``l_`` pixels of
one slide level, ``z_`` pixels of one Deep Zoom level, ``t_`` tile indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TileRegion:
    """What to read for one Deep Zoom tile, and the size to scale it to."""

    slide_level: int
    l_x: int
    l_y: int
    l_width: int
    l_height: int
    z_width: int
    z_height: int
    # Sub-pixel offset of the region's true origin from (l_x, l_y), in level pixels.
    l_frac_x: float = 0.0
    l_frac_y: float = 0.0

    @property
    def unscaled(self) -> bool:
        """Whether slide pixels map one to one onto tile pixels."""
        return (
            self.l_width == self.z_width
            and self.l_height == self.z_height
            and self.l_frac_x == self.l_frac_y == 0.0
        )


def best_level_for_downsample(l0_l_downsamples: tuple[float, ...], downsample: float) -> int:
    """The largest slide level whose downsample does not exceed ``downsample``."""
    for level in range(1, len(l0_l_downsamples)):
        if downsample < l0_l_downsamples[level]:
            return level - 1
    return len(l0_l_downsamples) - 1


class DeepZoomGeometry:
    """Deep Zoom levels, tile grid and slide regions for one slide."""

    def __init__(
        self,
        l_dimensions: tuple[tuple[int, int], ...],
        l0_l_downsamples: tuple[float, ...],
        tile_size: int,
        overlap: int,
    ) -> None:
        self.tile_size = tile_size
        self.overlap = overlap
        self.l_dimensions = l_dimensions
        self.l0_l_downsamples = l0_l_downsamples

        z_size = l_dimensions[0]
        z_dimensions = [z_size]
        while z_size[0] > 1 or z_size[1] > 1:
            z_size = (max(1, math.ceil(z_size[0] / 2)), max(1, math.ceil(z_size[1] / 2)))
            z_dimensions.append(z_size)
        self.z_dimensions: tuple[tuple[int, int], ...] = tuple(reversed(z_dimensions))
        self.t_dimensions: tuple[tuple[int, int], ...] = tuple(
            (math.ceil(w / tile_size), math.ceil(h / tile_size)) for w, h in self.z_dimensions
        )
        self.level_count = len(self.z_dimensions)
        l0_z_downsamples = tuple(2 ** (self.level_count - z - 1) for z in range(self.level_count))
        self.slide_from_z_level = tuple(
            best_level_for_downsample(l0_l_downsamples, d) for d in l0_z_downsamples
        )
        self.l_z_downsamples = tuple(
            l0_z_downsamples[z] / l0_l_downsamples[self.slide_from_z_level[z]]
            for z in range(self.level_count)
        )

    def has_tile(self, z_level: int, t_col: int, t_row: int) -> bool:
        """Whether the address lies inside the pyramid."""
        if not 0 <= z_level < self.level_count:
            return False
        t_cols, t_rows = self.t_dimensions[z_level]
        return 0 <= t_col < t_cols and 0 <= t_row < t_rows

    def tile_region(self, z_level: int, t_col: int, t_row: int) -> TileRegion:
        """The slide region behind one tile; the address must be valid (see ``has_tile``)."""
        slide_level = self.slide_from_z_level[z_level]
        l_z = self.l_z_downsamples[z_level]
        l_lim = self.l_dimensions[slide_level]
        t_lims = self.t_dimensions[z_level]
        z_lims = self.z_dimensions[z_level]

        l0_l = self.l0_l_downsamples[slide_level]
        out: list[tuple[int, float, int, int]] = []  # (l_start, l_frac, l_size, z_size) per axis
        for t, t_lim, z_lim, l_axis_lim in zip((t_col, t_row), t_lims, z_lims, l_lim, strict=True):
            z_tl = self.overlap * int(t != 0)
            z_br = self.overlap * int(t != t_lim - 1)
            z_size = min(self.tile_size, z_lim - self.tile_size * t) + z_tl + z_br
            l_start_f = l_z * (self.tile_size * t - z_tl)
            # openslide goes through level 0, truncating there, and reads the level
            # from that point with a sub-pixel offset; do the same.
            l_origin = int(l0_l * l_start_f) / l0_l
            l_start = math.floor(l_origin)
            l_size = int(min(math.ceil(l_z * z_size), l_axis_lim - math.ceil(l_start_f)))
            out.append((l_start, l_origin - l_start, max(l_size, 1), z_size))

        (l_x, f_x, l_w, z_w), (l_y, f_y, l_h, z_h) = out
        return TileRegion(slide_level, l_x, l_y, l_w, l_h, z_w, z_h, f_x, f_y)


def fitted_size(l_width: int, l_height: int, z_width: int, z_height: int) -> tuple[int, int]:
    """The size a region is scaled to: the largest that fits the tile and keeps its aspect.

    This is Pillow's ``Image.thumbnail`` rule, which openslide's generator uses; at
    the right and bottom edges it can make a tile a pixel smaller than the grid
    says. Viewers stretch tiles to the grid, so following the reference exactly
    keeps our tiles identical to it.
    """
    if z_width >= l_width and z_height >= l_height:
        return l_width, l_height
    aspect = l_width / l_height

    def round_aspect(number: float, key: Callable[[int], float]) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if z_width / z_height >= aspect:
        return round_aspect(z_height * aspect, lambda n: abs(aspect - n / z_height)), z_height
    return z_width, round_aspect(z_width / aspect, lambda n: 0 if n == 0 else abs(aspect - z_width / n))
