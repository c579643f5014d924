"""Slide QC in the spirit of HistoQC: is there tissue, and is the scan fit to read?

Tissue, pen marks, folds and air bubbles are found on the overview (~8 µm/px, one read of a
low level); focus needs detail, so it is judged at ~1 µm/px on tissue only, within a pixel budget. Each
defect gets a heatmap over the cell grid; a slide whose defects pass the limits below is
flagged "rescan suggested", with the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from collab.analysis.base import Analysis, Progress, SlideView
from collab.analysis.bubbles import BubbleFinder
from collab.analysis.focus import FocusFinder
from collab.analysis.folds import FoldFinder
from collab.analysis.grid import Grid
from collab.analysis.overview import StainColours, bright_field_overview
from collab.analysis.pen import PenFinder
from collab.analysis.result import Flag, Heatmap, Result
from collab.analysis.tissue import find_tissue

RESCAN = "rescan suggested"
# A cell whose heatmap value reaches this is counted as having the defect.
DEFECT_VALUE = 0.5


@dataclass(frozen=True)
class SlideQC(Analysis):
    """Tissue detection and scan quality: focus, pen marks, folds, air bubbles, too little tissue."""

    name: ClassVar[str] = "slide-qc"
    version: ClassVar[str] = "2"  # 2: air bubbles

    cell_um: float = 128.0
    overview_um: float = 8.0
    # Used when a slide does not say how big its pixels are: 20x, the commonest scan.
    assumed_mpp: float = 0.5
    pen: PenFinder = field(default_factory=PenFinder)
    folds: FoldFinder = field(default_factory=FoldFinder)
    focus: FocusFinder = field(default_factory=FocusFinder)
    bubbles: BubbleFinder = field(default_factory=BubbleFinder)
    # When to suggest a rescan: fractions of the tissue cells (blur, folds, bubbles) or of all
    # cells (pen) whose heatmap value reaches DEFECT_VALUE; and of the slide's area that is
    # tissue. A bubble hides the tissue under it much as a fold or a blur does (washed out, out
    # of the focal plane), so it is held to the same 5%: a bubble ~1.1 mm across on a 20 mm² section.
    rescan_out_of_focus: float = 0.05
    rescan_folds: float = 0.05
    rescan_bubbles: float = 0.05
    rescan_pen: float = 0.01
    min_tissue_fraction: float = 0.01

    def run(self, slide: SlideView, progress: Progress) -> Result:
        progress(0.0)
        grid = Grid.for_slide(
            slide, cell_um=self.cell_um, overview_um=self.overview_um, assumed_mpp=self.assumed_mpp
        )
        overview = bright_field_overview(slide, grid, "QC reads bright-field (H&E) slides only")
        if isinstance(overview, Flag):
            return Result(self.name, self.version, self.parameters, flags=(overview,))
        progress(0.1)
        stains = StainColours.fit(overview)
        ink = self.pen.find(overview, stains)
        tissue = find_tissue(overview, ink)
        folded = self.folds.find(overview, stains, tissue)
        bubbled = self.bubbles.find(overview, ink)
        progress(0.2)
        blurred = self.focus.find(slide, grid, tissue, ink, lambda done: progress(0.2 + 0.78 * done))

        tissue_cells = grid.cell_means(tissue.astype(np.float32))
        pen_cells = grid.cell_means(ink.astype(np.float32))
        fold_cells = grid.cell_means(folded.astype(np.float32)) / np.maximum(tissue_cells, 1e-6)
        fold_cells = np.where(tissue_cells >= 0.1, np.minimum(fold_cells, 1.0), 0.0).astype(np.float32)
        bubble_cells = grid.cell_means(bubbled.astype(np.float32))
        # Fractions of cells, as a person reading the heatmaps would count them.
        tissue_cell = tissue_cells >= 0.5
        tissue_count = max(int(tissue_cell.sum()), 1)
        scores = {
            "tissue_fraction": float(tissue.mean()),
            "tissue_mm2": float(tissue.sum() * overview.um_per_px**2 / 1e6),
            "out_of_focus_fraction": float((tissue_cell & (blurred >= DEFECT_VALUE)).sum() / tissue_count),
            "fold_fraction": float((tissue_cell & (fold_cells >= DEFECT_VALUE)).sum() / tissue_count),
            "pen_fraction": float((pen_cells >= DEFECT_VALUE).mean()),
            "bubble_fraction": float((tissue_cell & (bubble_cells >= DEFECT_VALUE)).sum() / tissue_count),
            "mpp": grid.mpp,
            "mpp_stated": float(grid.mpp_stated),
        }
        cell = grid.l0_cell_px
        heatmaps = (
            Heatmap("tissue", cell, tissue_cells, "fraction of the cell that is tissue"),
            Heatmap(
                "out of focus",
                cell,
                blurred,
                "fraction of the cell's tissue that is blurred (0.5 or more: counted as out of focus)",
            ),
            Heatmap("pen", cell, pen_cells, "fraction of the cell under pen ink"),
            Heatmap("folds", cell, fold_cells, "fraction of the cell's tissue that is folded"),
            Heatmap("bubbles", cell, bubble_cells, "fraction of the cell under an air bubble"),
        )
        progress(1.0)
        return Result(self.name, self.version, self.parameters, scores, self._flags(scores), heatmaps)

    def _flags(self, scores: dict[str, float]) -> tuple[Flag, ...]:
        reasons = []
        if scores["tissue_fraction"] < self.min_tissue_fraction:
            reasons.append(f"little or no tissue found ({scores['tissue_fraction']:.1%} of the slide)")
        else:
            if scores["out_of_focus_fraction"] >= self.rescan_out_of_focus:
                reasons.append(f"out of focus in {scores['out_of_focus_fraction']:.0%} of the tissue")
            if scores["fold_fraction"] >= self.rescan_folds:
                reasons.append(f"tissue folds in {scores['fold_fraction']:.0%} of the tissue")
            if scores["bubble_fraction"] >= self.rescan_bubbles:
                reasons.append(f"air bubbles over {scores['bubble_fraction']:.0%} of the tissue")
        if scores["pen_fraction"] >= self.rescan_pen:
            reasons.append(f"pen marks over {scores['pen_fraction']:.0%} of the slide")
        return (Flag(RESCAN, "; ".join(reasons)),) if reasons else ()
