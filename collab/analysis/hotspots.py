"""The best non-overlapping square windows of a per-cell map (hotspots)."""

from __future__ import annotations

import numpy as np


def best_windows(
    values: np.ndarray, weight: np.ndarray, size: int, count: int, min_weight: float
) -> list[tuple[int, int, int, float]]:
    """Up to ``count`` windows of ``size`` x ``size`` cells, best first, none overlapping:
    (row, col, size, weighted mean value), where a window's mean weight is at least
    ``min_weight`` (e.g. tissue: a hotspot half on glass is no hotspot)."""
    rows, cols = values.shape
    size = max(1, min(size, rows, cols))
    weighted = _window_sums(values * weight, size)
    total = _window_sums(weight, size)
    score = np.where(total >= min_weight * size * size, weighted / np.maximum(total, 1e-9), -np.inf)
    found: list[tuple[int, int, int, float]] = []
    while len(found) < count and np.isfinite(score).any():
        r, c = np.unravel_index(int(np.argmax(score)), score.shape)
        found.append((int(r), int(c), size, float(score[r, c])))
        # No later window may share a cell with this one.
        score[max(0, r - size + 1) : r + size, max(0, c - size + 1) : c + size] = -np.inf
    return found


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum over each size x size window, indexed by its top-left cell (summed-area table)."""
    table = np.pad(np.cumsum(np.cumsum(values.astype(np.float64), axis=0), axis=1), ((1, 0), (1, 0)))
    return np.asarray(
        table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    )
