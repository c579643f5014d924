"""An example analysis plug-in: how pale each part of a slide is, from its smallest level.

Pale is near-white: glass without tissue, or tissue so faintly stained it may need a look. It
shows every part of a result: a score, a flag with its reason, a heatmap and a region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collab.analysis.base import Analysis, Progress, SlideView, rgb
from collab.analysis.result import Flag, Heatmap, Region, Result


@dataclass(frozen=True)
class PaleAreas(Analysis):
    name = "pale-areas"
    version = "1.0.0"

    grid: int = 16  # cells along the longer side of the slide
    pale_above: float = 0.85  # mean brightness (0..1) from which a cell is pale
    flag_above: float = 0.9  # fraction of pale cells from which the slide is flagged

    def run(self, slide: SlideView, progress: Progress) -> Result:
        level = slide.level_count - 1  # the smallest level: a few hundred pixels is enough here
        width, height = slide.level_dimensions[level]
        pixels = rgb(slide.read_region((0, 0), level, (width, height), as_array=True))
        progress(0.5)
        level0_width, level0_height = slide.dimensions
        cell_l0 = max(1, -(-max(level0_width, level0_height) // self.grid))  # level-0 px, rounded up
        cell_px = cell_l0 / slide.level_downsamples[level]  # the same cell in this level's pixels
        rows, cols = -(-level0_height // cell_l0), -(-level0_width // cell_l0)
        brightness = np.zeros((rows, cols), dtype=np.float32)
        for r in range(rows):
            for c in range(cols):
                cell = pixels[
                    int(r * cell_px) : int((r + 1) * cell_px), int(c * cell_px) : int((c + 1) * cell_px)
                ]
                brightness[r, c] = cell.mean() / 255.0 if cell.size else 1.0
        pale = float((brightness >= self.pale_above).mean())
        r, c = np.unravel_index(int(np.argmax(brightness)), brightness.shape)
        x0, y0 = float(c * cell_l0), float(r * cell_l0)
        palest = Region(
            "palest area",
            ((x0, y0), (x0 + cell_l0, y0), (x0 + cell_l0, y0 + cell_l0), (x0, y0 + cell_l0)),
            float(brightness[r, c]),
        )
        flags = (
            (Flag("mostly pale", f"{pale:.0%} of the slide is near-white"),)
            if pale >= self.flag_above
            else ()
        )
        progress(1.0)
        return Result(
            self.name,
            self.version,
            self.parameters,
            scores={"pale fraction": pale},
            flags=flags,
            heatmaps=(Heatmap("brightness", cell_l0, brightness, "mean brightness, 0 dark to 1 white"),),
            regions=(palest,),
        )
