"""Where the tissue is, on the overview: stained, not ink, not a speck of dust."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from collab.analysis.masks import without_small
from collab.analysis.overview import STAINED_OD, Overview

_MIN_TISSUE_UM2 = 2_500.0  # (50 µm)^2: smaller stained specks are dust or debris


def find_tissue(overview: Overview, ink: np.ndarray) -> np.ndarray:
    """Boolean (h, w) overview mask of tissue. Smoothed over 3 x 3 pixels (24 µm), so that
    pale gaps between cells inside tissue count as tissue."""
    stained = ndimage.uniform_filter(overview.od_sum, 3, mode="nearest") > STAINED_OD
    return without_small(stained & ~ink, overview.area_px(_MIN_TISSUE_UM2))
