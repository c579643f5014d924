"""Tissue folded over itself: two layers absorb about twice the light of one.

Darkness alone would take every dense tissue for a fold (epidermis is darker than dermis). But a
fold keeps the hue of the tissue it doubles, so a pixel is compared with the usual darkness of
tissue of its own hue on this slide: tissue far darker than its hue usually is, is folded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from collab.analysis.overview import Overview, StainColours, chromaticity


@dataclass(frozen=True)
class FoldFinder:
    """``darker`` is the ratio of optical density to the usual at that hue that counts as folded."""

    darker: float = 1.45
    hue_bins: int = 16
    smooth_um: float = 40.0  # nuclei and gaps average out; a fold is wider than this

    def find(self, overview: Overview, stains: StainColours, tissue: np.ndarray) -> np.ndarray:
        """Boolean (h, w) overview mask of folded tissue."""
        if tissue.sum() < self.hue_bins * 10:
            return np.zeros_like(tissue)
        size = max(1, round(self.smooth_um / overview.um_per_px)) | 1
        log_od = ndimage.uniform_filter(np.log(np.maximum(overview.od_sum, 1e-3)), size, mode="nearest")
        hue = stains.hue_position(chromaticity(overview.od))
        edges = np.quantile(hue[tissue], np.linspace(0.0, 1.0, self.hue_bins + 1))
        bins = np.clip(np.searchsorted(edges, hue) - 1, 0, self.hue_bins - 1)
        # The usual darkness of each hue: the median over the tissue of that hue.
        usual = np.array(
            ndimage.median(log_od, labels=np.where(tissue, bins + 1, 0), index=range(1, self.hue_bins + 1))
        )
        usual = np.nan_to_num(usual, nan=float(np.median(log_od[tissue])))
        return np.asarray(tissue & (log_od - usual[bins] > math.log(self.darker)))
