"""Marker pen on the slide: ink is not stain, so its colour, or its darkness, gives it away.

Ink over glass or over pale tissue is far from the slide's stain colours; where a stroke
crosses dark tissue the mix may look almost like stain. So strokes are found as in hysteresis
thresholding: clearly-ink pixels seed them, and they grow through connected pixels that are
only somewhat off. Specks are dropped: a pen mark is a stroke, not a dot of dye.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collab.analysis.masks import grown, without_small
from collab.analysis.overview import Overview, StainColours, chromaticity


@dataclass(frozen=True)
class PenFinder:
    """Thresholds: colour distances in standard deviations of the slide's stain colours;
    darkness in optical density summed over R, G, B at ~8 µm/px."""

    seed_distance: float = 3.5
    grow_distance: float = 2.0
    # Darker than stain at this scale: tissue averaged over 8 µm almost never passes 4.
    seed_od: float = 6.0
    grow_od: float = 4.0
    min_seed_um2: float = 3_200.0
    min_stroke_um2: float = 25_600.0  # (160 µm)^2: narrower than any marker line is long

    def find(self, overview: Overview, stains: StainColours) -> np.ndarray:
        """Boolean (h, w) overview mask of ink."""
        stained = overview.stained
        distance = np.where(stained, stains.distance(chromaticity(overview.od)), 0.0)
        od_sum = overview.od_sum
        seeds = stained & ((distance > self.seed_distance) | (od_sum > self.seed_od))
        seeds = without_small(seeds, overview.area_px(self.min_seed_um2))
        allowed = stained & ((distance > self.grow_distance) | (od_sum > self.grow_od))
        return without_small(grown(seeds, allowed), overview.area_px(self.min_stroke_um2))
