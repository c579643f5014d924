"""Small operations on boolean masks that several detectors share."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def without_small(mask: np.ndarray, min_px: int) -> np.ndarray:
    """The mask less its connected parts (8-connected) smaller than ``min_px`` pixels."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    keep = np.bincount(labels.ravel(), minlength=count + 1) >= min_px
    keep[0] = False
    return np.asarray(keep[labels])


def grown(seeds: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Every allowed pixel connected to a seed through allowed pixels (hysteresis)."""
    return np.asarray(ndimage.binary_propagation(seeds & allowed, mask=allowed) | seeds)
