"""H&E stain analysis: haematoxylin and eosin separated (scikit-image's rgb2hed), a nuclear
density heatmap over the tissue, and the densest areas suggested as hotspots.

Nuclear density is the fraction of a cell's tissue pixels, at ~2 µm/px, whose haematoxylin is
above the slide's own threshold (Otsu's, over all its tissue): labs stain differently, and
rgb2hed's fixed stain vectors read one lab's haematoxylin at a fifth of another's, so densities
compare areas within a slide, not slides. Tissue cells are read within a pixel budget, as for
focus in QC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from skimage.color import rgb2hed
from skimage.filters import threshold_otsu

from collab.analysis.base import Analysis, Progress, SlideView
from collab.analysis.detail import DetailPlan, per_cell
from collab.analysis.grid import Grid
from collab.analysis.hotspots import best_windows
from collab.analysis.overview import STAINED_OD, StainColours, bright_field_overview, glass_colour
from collab.analysis.pen import PenFinder
from collab.analysis.result import Flag, Heatmap, Region, Result
from collab.analysis.tissue import find_tissue

# Haematoxylin (rgb2hed units) is histogrammed per cell on a log scale: one slide's nuclei
# read 0.01, another's 0.1.
_H_EDGES = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 255)])


@dataclass(frozen=True)
class StainAnalysis(Analysis):
    """Haematoxylin and eosin amounts, nuclear density, and hotspots of nuclear density."""

    name: ClassVar[str] = "he-stain"
    version: ClassVar[str] = "1"

    cell_um: float = 128.0
    overview_um: float = 8.0
    assumed_mpp: float = 0.5
    detail_um: float = 2.0
    hotspots: int = 3
    # 0.25 mm², about one high-power field.
    hotspot_um: float = 500.0
    hotspot_min_tissue: float = 0.5
    max_detail_megapixels: float = 48.0
    pen: PenFinder = field(default_factory=PenFinder)

    def run(self, slide: SlideView, progress: Progress) -> Result:
        progress(0.0)
        grid = Grid.for_slide(
            slide, cell_um=self.cell_um, overview_um=self.overview_um, assumed_mpp=self.assumed_mpp
        )
        overview = bright_field_overview(slide, grid, "H&E analysis reads bright-field slides only")
        if isinstance(overview, Flag):
            return Result(self.name, self.version, self.parameters, flags=(overview,))
        ink = self.pen.find(overview, StainColours.fit(overview))
        tissue_cells = grid.cell_means(find_tissue(overview, ink).astype(np.float32))
        ink_cells = grid.cell_means(ink.astype(np.float32))
        progress(0.1)

        # Cells with tissue, and not under pen (blue ink reads as haematoxylin).
        wanted = (tissue_cells >= 0.25) & (ink_cells < 0.1)
        plan = DetailPlan.make(grid, wanted, self.detail_um, self.max_detail_megapixels)
        rows, cols = grid.shape
        h_counts = np.zeros((rows, cols, len(_H_EDGES)), np.float64)
        h_sum = np.zeros((rows, cols), np.float64)
        e_sum = np.zeros((rows, cols), np.float64)
        glass = glass_colour(overview.rgb)
        for r0, r1, c0, c1, pixels in plan.blocks(slide, lambda done: progress(0.1 + 0.85 * done)):
            stained = np.log(glass / np.clip(pixels, 1.0, glass)).sum(axis=2) > STAINED_OD
            hed = rgb2hed(pixels / 255.0).astype(np.float32)
            h = np.where(stained, hed[..., 0], np.nan)
            cells = per_cell(h, plan.cell_px).reshape(r1 - r0, c1 - c0, -1)
            h_sum[r0:r1, c0:c1] = np.nansum(cells, axis=2)
            e_cells = per_cell(np.where(stained, hed[..., 1], 0.0), plan.cell_px)
            e_sum[r0:r1, c0:c1] = e_cells.sum(axis=(2, 3))
            h_counts[r0:r1, c0:c1] = _histograms(cells)
        counts = h_counts.sum(axis=2)
        total = counts.sum()
        if total == 0:
            return Result(self.name, self.version, self.parameters, {"tissue_fraction": 0.0})

        threshold_bin = _otsu_bin(h_counts.sum(axis=(0, 1)))
        dense = h_counts[..., threshold_bin:].sum(axis=2) / np.maximum(counts, 1)
        # Bands are read whole; only the wanted cells among them count.
        density = plan.fill(np.where(plan.read & (counts > 0), dense, 0.0)).astype(np.float32)
        weight = np.where(wanted, tissue_cells, 0.0)
        windows = best_windows(
            density,
            weight,
            max(1, round(self.hotspot_um / self.cell_um)),
            self.hotspots,
            self.hotspot_min_tissue,
        )
        cell = grid.l0_cell_px
        regions = tuple(
            Region(
                f"hotspot {i} (nuclear density {score:.2f})",
                _square(c * cell, r * cell, size * cell, grid),
                score,
            )
            for i, (r, c, size, score) in enumerate(windows, start=1)
        )
        scores = {
            "tissue_fraction": float(tissue_cells.mean()),
            "haematoxylin_mean": float(h_sum.sum() / total),
            "eosin_mean": float(e_sum.sum() / total),
            "nuclear_density": float((density * weight).sum() / max(weight.sum(), 1e-6)),
            "haematoxylin_threshold": float(_H_EDGES[threshold_bin]),
            "cells_sampled_fraction": float(plan.read.sum() / max(plan.wanted.sum(), 1)),
        }
        heatmap = Heatmap(
            "nuclear density",
            cell,
            density,
            "fraction of the cell's tissue pixels dense in haematoxylin (above the slide's own threshold)",
        )
        progress(1.0)
        return Result(self.name, self.version, self.parameters, scores, (), (heatmap,), regions)


def _histograms(cells: np.ndarray) -> np.ndarray:
    """Per cell, counts of haematoxylin values in each _H_EDGES bin (NaN: not stained)."""
    n_cells = cells.shape[0] * cells.shape[1]
    flat = cells.reshape(n_cells, -1)
    valid = ~np.isnan(flat)
    bins = np.clip(
        np.searchsorted(_H_EDGES, np.where(valid, flat, 0.0), side="right") - 1, 0, len(_H_EDGES) - 1
    )
    index = (np.arange(n_cells)[:, None] * len(_H_EDGES) + bins)[valid]
    counts = np.bincount(index, minlength=n_cells * len(_H_EDGES))
    return counts.reshape(cells.shape[0], cells.shape[1], len(_H_EDGES))


def _otsu_bin(histogram: np.ndarray) -> int:
    """The first bin above Otsu's threshold over a histogram on _H_EDGES."""
    centres = np.append((_H_EDGES[:-1] + _H_EDGES[1:]) / 2, _H_EDGES[-1])
    used = histogram > 0
    if used.sum() < 2:
        return int(np.argmax(used))
    threshold = threshold_otsu(hist=(histogram[used], centres[used]))
    return int(np.searchsorted(centres, threshold, side="right"))


def _square(x: int, y: int, side: int, grid: Grid) -> tuple[tuple[float, float], ...]:
    """A square's corners in level-0 pixels, clockwise from top left, kept inside the slide."""
    x1, y1 = min(x + side, grid.l0_width), min(y + side, grid.l0_height)
    return ((float(x), float(y)), (float(x1), float(y)), (float(x1), float(y1)), (float(x), float(y1)))
