"""Reading level regions from decoded cells (stored tiles, frames or strip bands), cached."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from collab.slides.cache import SizedLRU
from collab.slides.reader import Level, SlideError


@dataclass(frozen=True)
class CellGrid:
    """How one slide level is cut into cells, in pixels of that level."""

    cell_width: int
    cell_height: int


class CellCache:
    """Decoded cells of one slide, in a cache shared by every open slide."""

    def __init__(self, cache: SizedLRU[np.ndarray]) -> None:
        self._cache = cache
        # A fresh object: never equal to the key of another reader, even a later one.
        self.owner = object()

    def read_region(
        self,
        level: int,
        grid: CellGrid,
        l_size: tuple[int, int],
        decode: Callable[[int, int, int], np.ndarray],
        l_x: int,
        l_y: int,
        l_width: int,
        l_height: int,
        *,
        scale: int = 1,
    ) -> np.ndarray:
        """RGB pixels of a region of a level ``l_size`` big; outside the level is white.

        ``decode(level, c_row, c_col)`` gives the pixels of one cell; a cell at the
        right or bottom edge may be larger than what is left of the level. With
        ``scale`` 2 every coordinate, size and cell is of the level at half resolution.
        """
        width, height = l_size
        ch, cw = grid.cell_height, grid.cell_width
        x0, y0 = max(l_x, 0), max(l_y, 0)
        x1, y1 = min(l_x + l_width, width), min(l_y + l_height, height)
        inside = (x0, y0, x1, y1) == (l_x, l_y, l_x + l_width, l_y + l_height)
        shape = (l_height, l_width, 3)
        out = np.empty(shape, np.uint8) if inside else np.full(shape, 255, np.uint8)
        if x0 >= x1 or y0 >= y1:
            return out
        cells = [
            (c_row, c_col)
            for c_row in range(y0 // ch, (y1 - 1) // ch + 1)
            for c_col in range(x0 // cw, (x1 - 1) // cw + 1)
        ]
        decoded = self._cache.get_or_create_many(
            [
                ((self.owner, level, scale, c_row, c_col), partial(decode, level, c_row, c_col))
                for c_row, c_col in cells
            ],
            lambda pixels: pixels.nbytes,
        )
        for (c_row, c_col), cell in zip(cells, decoded, strict=True):
            cx0, cy0 = c_col * cw, c_row * ch
            sx0, sy0 = max(x0, cx0), max(y0, cy0)
            sx1, sy1 = min(x1, cx0 + cell.shape[1]), min(y1, cy0 + cell.shape[0])
            if sx0 < sx1 and sy0 < sy1:
                out[sy0 - l_y : sy1 - l_y, sx0 - l_x : sx1 - l_x] = cell[
                    sy0 - cy0 : sy1 - cy0, sx0 - cx0 : sx1 - cx0
                ]
        return out

    def cell(
        self, level: int, c_row: int, c_col: int, decode: Callable[[int, int, int], np.ndarray]
    ) -> np.ndarray:
        """One full-resolution cell, through the cache."""
        [pixels] = self._cache.get_or_create_many(
            [((self.owner, level, 1, c_row, c_col), partial(decode, level, c_row, c_col))],
            lambda pixels: pixels.nbytes,
        )
        return pixels

    def forget(self) -> None:
        """Drop this slide's cells."""
        self._cache.discard_prefix(self.owner)


def halvable(grid: CellGrid) -> bool:
    """Whether cells of this grid can be decoded at half resolution one by one.

    Cells must have even sides; tiny ones (a 16 px test slide) are not worth it,
    and there a DCT-domain downscale of sharp colour edges strays from a box filter.
    """
    return (
        grid.cell_width % 2 == 0
        and grid.cell_height % 2 == 0
        and min(grid.cell_width, grid.cell_height) >= 64
    )


def halve(pixels: np.ndarray) -> np.ndarray:
    """Half the resolution with a 2x2 box filter (a last odd row or column is kept whole)."""
    return np.asarray(Image.fromarray(pixels).reduce(2))


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Turn greyscale or RGBA pixels (height, width, samples) into RGB."""
    samples = pixels.shape[-1]
    if samples == 3:
        return pixels
    if samples == 1:
        return np.repeat(pixels, 3, axis=-1)
    if samples == 4:
        rgb = pixels[..., :3].astype(np.uint16)
        alpha = pixels[..., 3:4].astype(np.uint16)
        return (rgb * alpha // 255 + (255 - alpha)).astype(np.uint8)
    raise SlideError(f"unsupported number of colour samples: {samples}")


class CellRegions:
    """Region reads for a reader whose levels are cut into cells.

    The reader provides ``levels``, ``_grids`` (one CellGrid per level), ``_cells``
    and the two decoders; these reads are the same for every such format.
    """

    levels: tuple[Level, ...]
    _grids: Sequence[CellGrid]
    _cells: CellCache

    def _decode_cell(self, level: int, c_row: int, c_col: int) -> np.ndarray:
        raise NotImplementedError

    def _decode_cell_half(self, level: int, c_row: int, c_col: int) -> np.ndarray:
        raise NotImplementedError

    def read_region(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> np.ndarray:
        """RGB pixels of a level region; outside the slide is white."""
        lv = self.levels[level]
        return self._cells.read_region(
            level, self._grids[level], (lv.width, lv.height), self._decode_cell, l_x, l_y, l_width, l_height
        )

    def read_region_half(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> np.ndarray:
        """The region at half resolution, from cells decoded at half resolution."""
        grid, lv = self._grids[level], self.levels[level]
        if not halvable(grid):
            return halve(self.read_region(level, l_x, l_y, l_width, l_height))
        return self._cells.read_region(
            level,
            CellGrid(grid.cell_width // 2, grid.cell_height // 2),
            ((lv.width + 1) // 2, (lv.height + 1) // 2),
            self._decode_cell_half,
            l_x // 2,
            l_y // 2,
            l_width // 2,
            l_height // 2,
            scale=2,
        )
