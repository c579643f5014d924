"""Out-of-focus tissue: where fine detail (Laplacian energy at ~1 µm/px) is missing.

How much fine detail tissue has depends on the tissue and the stain, so each piece of tissue
is compared with the slide's own typical tissue: a 32 µm block with less than a quarter of
the median energy is blurred. A cell's value is the fraction of its tissue blocks that are.
Reading a whole slide at 1 µm/px can be costly, so the pixels read are bounded: past the
budget, only every n-th cell in each direction is read and stands for its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from collab.analysis.base import Progress, SlideView
from collab.analysis.detail import DetailPlan
from collab.analysis.grid import Grid

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class FocusFinder:
    """``blurred_ratio``: a block with less Laplacian energy than this fraction of the slide's
    median is out of focus. ``min_reference_energy`` keeps a slide that is out of focus all
    over from calling its own blur typical (grey levels squared; sharp tissue scores 300-5000).
    """

    detail_um: float = 1.0
    blocks_per_cell: int = 4
    blurred_ratio: float = 0.25
    min_reference_energy: float = 60.0
    max_detail_megapixels: float = 64.0

    def find(
        self, slide: SlideView, grid: Grid, tissue: np.ndarray, ink: np.ndarray, progress: Progress
    ) -> np.ndarray:
        """A value per cell (rows, cols): the fraction of the cell's tissue that is blurred."""
        rows, cols = grid.shape
        per_cell = grid.overview_px_per_cell
        cell_px = grid.l0_cell_px // grid.detail_scale(self.detail_um)
        blocks = math.gcd(self.blocks_per_cell, per_cell, cell_px)
        shape = (rows * blocks, cols * blocks)
        # Blocks judged: mostly tissue, mostly not ink.
        judged = (_block_means(tissue, per_cell // blocks, shape) >= 0.5) & (
            _block_means(ink, per_cell // blocks, shape) < 0.5
        )
        wanted = np.asarray(judged.reshape(rows, blocks, cols, blocks).any(axis=(1, 3)))
        plan = DetailPlan.make(grid, wanted, self.detail_um, self.max_detail_megapixels)
        energy = np.full(shape, np.nan, np.float32)
        for r0, r1, c0, c1, pixels in plan.blocks(slide, progress):
            laplacian = ndimage.laplace(pixels @ _LUMA, mode="nearest")
            energy[r0 * blocks : r1 * blocks, c0 * blocks : c1 * blocks] = _block_means(
                laplacian * laplacian, cell_px // blocks, ((r1 - r0) * blocks, (c1 - c0) * blocks)
            )
        judged &= ~np.isnan(energy)
        if not judged.any():
            return np.zeros((rows, cols), np.float32)
        reference = max(float(np.median(energy[judged])), self.min_reference_energy)
        blurred = judged & (energy < self.blurred_ratio * reference)
        count = judged.reshape(rows, blocks, cols, blocks).sum(axis=(1, 3))
        values = blurred.reshape(rows, blocks, cols, blocks).sum(axis=(1, 3)) / np.maximum(count, 1)
        return plan.fill(values).astype(np.float32)


def _block_means(values: np.ndarray, block: int, shape: tuple[int, int]) -> np.ndarray:
    """Mean of each block x block square, as a (rows, cols) array; past the edge counts as 0."""
    rows, cols = shape
    padded = np.zeros((rows * block, cols * block), np.float32)
    h, w = min(values.shape[0], rows * block), min(values.shape[1], cols * block)
    padded[:h, :w] = values[:h, :w]
    return np.asarray(padded.reshape(rows, block, cols, block).mean(axis=(1, 3)))
