"""Reading tissue cells at a detail scale, within a pixel budget.

Reads go by bands of cell rows and runs of wanted cells, so each slide tile is decoded about
once. Past the budget, only every n-th cell in each direction is read (a lattice), and the
cells in between take the value of the read cell of their n x n block.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from collab.analysis.base import Progress, SlideView
from collab.analysis.grid import Grid, read_scaled, runs

_BAND_PX = 512  # detail pixels of cell rows read at once


@dataclass(frozen=True)
class DetailPlan:
    """Which cells are read, at what scale."""

    l0_per_px: int
    cell_px: int  # detail pixels across a cell
    stride: int  # 1 when every wanted cell is read
    wanted: np.ndarray  # bool (rows, cols)
    read: np.ndarray  # bool (rows, cols): wanted and on the lattice

    @classmethod
    def make(cls, grid: Grid, wanted: np.ndarray, detail_um: float, max_megapixels: float) -> DetailPlan:
        l0_per_px = grid.detail_scale(detail_um)
        cell_px = grid.l0_cell_px // l0_per_px
        needed = int(wanted.sum()) * cell_px * cell_px
        stride = max(1, math.ceil(math.sqrt(needed / (max_megapixels * 1e6))))
        read = wanted.copy()
        if stride > 1:
            lattice = np.zeros_like(wanted)
            lattice[::stride, ::stride] = True
            read &= lattice
        return cls(l0_per_px, cell_px, stride, wanted, read)

    def blocks(self, slide: SlideView, progress: Progress) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
        """(row0, row1, col0, col1, RGB float32 pixels) for each band and run of cells read."""
        rows = self.read.shape[0]
        # A band of rows is read whole; on a lattice, most rows in a band are not wanted.
        band = 1 if self.stride > 1 else max(1, _BAND_PX // self.cell_px)
        for r0 in range(0, rows, band):
            r1 = min(rows, r0 + band)
            for c0, c1 in runs(np.asarray(self.read[r0:r1].any(axis=0))):
                n = self.cell_px
                yield (
                    r0,
                    r1,
                    c0,
                    c1,
                    read_scaled(slide, self.l0_per_px, c0 * n, r0 * n, (c1 - c0) * n, (r1 - r0) * n),
                )
            progress(r1 / rows)

    def fill(self, values: np.ndarray) -> np.ndarray:
        """Per-cell values with each wanted cell not read given its lattice cell's value."""
        if self.stride == 1:
            return values
        rows, cols = values.shape
        s = self.stride
        nearest = np.repeat(np.repeat(values[::s, ::s], s, axis=0), s, axis=1)[:rows, :cols]
        return np.where(self.wanted & ~self.read, nearest, values)


def per_cell(values: np.ndarray, cell_px: int) -> np.ndarray:
    """(rows * cell_px, cols * cell_px, ...) -> (rows, cols, cell_px, cell_px, ...) without a copy."""
    rows, cols = values.shape[0] // cell_px, values.shape[1] // cell_px
    return np.swapaxes(values.reshape(rows, cell_px, cols, cell_px, *values.shape[2:]), 1, 2)
