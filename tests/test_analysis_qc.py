"""Slide QC and H&E stain analysis, on real slides and on real slides spoilt with known defects.

The accuracy test is held out: QC's thresholds were tuned on slides that tests/qc_data.py made
with seeds 101, 102 and 103 from both sources (CMU-1-Small-Region and the TCGA slide); the
seeds asserted here (1 and 2) were not looked at until the thresholds were fixed. The bubble
finder was tuned likewise, on slides made with BUBBLE_SLIDE_COUNTS and seeds 101-105; the
held-out seeds were run with a first version (recall 0.717, below the floor), which was then
reworked on the tuning seeds only before they were run again. There is no third H&E source to
hold out whole: the other shared slides are synthetic, fluorescent or 16 x 16 pixels.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tiffslide

from collab.analysis.base import SlideView
from collab.analysis.focus import FocusFinder
from collab.analysis.overview import NOT_ANALYSED
from collab.analysis.qc import DEFECT_VALUE, RESCAN, SlideQC
from collab.analysis.result import Heatmap, Result
from collab.analysis.stain import StainAnalysis
from tests.conftest import real_slide
from tests.qc_data import BUBBLE_SLIDE_COUNTS, DefectSlide, make_defect_slide, make_glass_slide

HELD_OUT = [
    ("CMU-1-Small-Region.svs", 1),
    ("tcga-cr-7395-01a-01-ts1.svs", 1),
    ("tcga-cr-7395-01a-01-ts1.svs", 2),
]
# The "done when": precision and recall per heatmap cell.
TARGETS = {"blur": 0.9, "pen": 0.9, "fold": 0.8}
# Air bubbles were asked for later, as "folds or bubbles": the folds' floor.
BUBBLE_TARGET = 0.8
HEATMAP_OF = {"blur": "out of focus", "pen": "pen", "fold": "folds", "bubble": "bubbles"}
# A cell truly has a defect when its mask covers at least half of it.
TRUE_COVERAGE = 0.5


@dataclass
class Checked:
    slide: DefectSlide
    result: Result
    progress: list[float]
    seconds: float


def _run(analysis: SlideQC | StainAnalysis, slide: SlideView) -> tuple[Result, list[float]]:
    progress: list[float] = []
    return analysis.run(slide, progress.append), progress


def _held_out(tmp_path_factory: pytest.TempPathFactory, counts: dict[str, int] | None) -> list[Checked]:
    sources = {name: real_slide(name) for name, _ in HELD_OUT}  # skips when the slides are absent
    checked = []
    for name, seed in HELD_OUT:
        path = tmp_path_factory.mktemp("qc") / f"{Path(name).stem}-{seed}.tiff"
        slide = make_defect_slide(path, sources[name], seed, counts=counts)
        with tiffslide.TiffSlide(slide.path) as view:
            start = time.perf_counter()
            result, progress = _run(SlideQC(), view)
            checked.append(Checked(slide, result, progress, time.perf_counter() - start))
    return checked


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> list[Checked]:
    """Slides with glass, folds, blur and pen, and no bubbles."""
    return _held_out(tmp_path_factory, None)


@pytest.fixture(scope="module")
def held_out_bubbles(tmp_path_factory: pytest.TempPathFactory) -> list[Checked]:
    """The same seeds' slides with bubbles, and one of each other defect."""
    return _held_out(tmp_path_factory, BUBBLE_SLIDE_COUNTS)


def _tally(checked: Checked, defect: str) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) over the cells judged for a defect:
    tissue cells for blur and folds, every cell for pen and bubbles (a bubble shows over glass
    too); a cell that truly has another defect is not judged for this one (each generated cell
    has one truth)."""
    heatmap = checked.result.heatmap(HEATMAP_OF[defect])
    cell = heatmap.level0_cell_px
    truth = checked.slide.coverage(defect, cell) >= TRUE_COVERAGE
    found = heatmap.values >= DEFECT_VALUE
    everywhere = defect in ("pen", "bubble")
    judged = np.ones_like(truth) if everywhere else checked.slide.coverage("tissue", cell) >= 0.5
    for other in HEATMAP_OF:
        if other != defect:
            judged &= checked.slide.coverage(other, cell) < TRUE_COVERAGE
    return (
        int((found & truth & judged).sum()),
        int((found & ~truth & judged).sum()),
        int((~found & truth & judged).sum()),
    )


def _measure(checked: list[Checked], defect: str) -> tuple[float, float]:
    """Precision and recall over the cells of all the slides, printed."""
    tp, fp, fn = (sum(t) for t in zip(*(_tally(c, defect) for c in checked), strict=True))
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    cells = f"cells: {tp} found, {fp} false, {fn} missed"
    print(f"\n{defect:6s} precision {precision:.3f} recall {recall:.3f} ({cells})")
    assert tp + fn >= 40, f"too few {defect} cells to measure"
    return precision, recall


def test_qc_finds_blur_pen_and_folds_with_the_precision_and_recall_asked_for(held_out: list[Checked]) -> None:
    figures = {defect: _measure(held_out, defect) for defect in TARGETS}
    for checked in held_out:
        print(f"{checked.slide.path.name}: QC took {checked.seconds:.1f} s; {checked.result.flags}")
    for defect, target in TARGETS.items():
        precision, recall = figures[defect]
        assert precision >= target and recall >= target, (defect, precision, recall)


def test_qc_finds_air_bubbles_and_sees_none_where_there_are_none(
    held_out: list[Checked], held_out_bubbles: list[Checked]
) -> None:
    precision, recall = _measure(held_out_bubbles, "bubble")
    for checked in held_out_bubbles:
        print(f"{checked.slide.path.name} (bubbles): QC took {checked.seconds:.1f} s; {checked.result.flags}")
    assert precision >= BUBBLE_TARGET and recall >= BUBBLE_TARGET, (precision, recall)
    # Folds, blur, pen, glass and the tissue's own gaps are not bubbles.
    false_cells = [_tally(c, "bubble")[1] for c in held_out]
    print(f"bubble cells found on the slides without bubbles: {false_cells}")
    assert sum(false_cells) <= 3
    # Bubbles over 5% or more of the tissue ask for a rescan: some of these slides' do.
    reasons = [flag.reason for c in held_out_bubbles if (flag := c.result.flag(RESCAN)) is not None]
    assert any(re.search(r"air bubbles over \d+% of the tissue", reason) for reason in reasons)
    assert not any("air bubbles" in flag.reason for c in held_out for flag in c.result.flags)


def test_spoilt_slides_are_flagged_for_rescan_with_the_reasons(held_out: list[Checked]) -> None:
    reasons = []
    for checked in held_out:
        flag = checked.result.flag(RESCAN)
        assert flag is not None
        # Every slide has 0.5-1.3 mm blobs of blur over 10-25% of its tissue, and pen strokes.
        assert re.search(r"out of focus in \d+% of the tissue", flag.reason)
        assert re.search(r"pen marks over \d+% of the slide", flag.reason)
        reasons.append(flag.reason)
    # Folds are narrower: not every slide's pass the 5% of tissue cells that asks for a rescan.
    assert any(re.search(r"tissue folds in \d+% of the tissue", reason) for reason in reasons)


def test_progress_rises_from_0_to_1(held_out: list[Checked]) -> None:
    for checked in held_out:
        assert checked.progress[0] == 0.0 and checked.progress[-1] == 1.0
        assert checked.progress == sorted(checked.progress)
        assert len(checked.progress) >= 4


def test_heatmaps_cover_the_slide_with_values_in_0_to_1(held_out: list[Checked]) -> None:
    checked = held_out[0]
    with tiffslide.TiffSlide(checked.slide.path) as view:
        width, height = view.dimensions
    names = [h.name for h in checked.result.heatmaps]
    assert names == ["tissue", "out of focus", "pen", "folds", "bubbles"]
    for heatmap in checked.result.heatmaps:
        cell = heatmap.level0_cell_px
        # 128 µm cells, a whole number of overview pixels of a power-of-two level-0 size.
        assert cell == 256
        assert heatmap.values.shape == (-(-height // cell), -(-width // cell))
        assert heatmap.values.dtype == np.float32
        assert heatmap.values.min() >= 0.0 and heatmap.values.max() <= 1.0


class CountingSlide:
    """A real slide that counts the pixels read from each level."""

    def __init__(self, slide: tiffslide.TiffSlide) -> None:
        self.slide = slide
        self.pixels_read: dict[int, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.slide, name)

    def read_region(
        self,
        location: tuple[int, int],
        level: int,
        size: tuple[int, int],
        *,
        as_array: bool,
        padding: bool = True,
    ) -> npt.NDArray[Any]:
        self.pixels_read[level] = self.pixels_read.get(level, 0) + size[0] * size[1]
        return self.slide.read_region(location, level, size, as_array=True, padding=padding)


def test_detail_reads_stay_within_the_budget(held_out: list[Checked]) -> None:
    checked = held_out[1]  # TCGA: 1 µm/px, so the detail reads come from level 0
    budget = FocusFinder(max_detail_megapixels=1.0)
    with tiffslide.TiffSlide(checked.slide.path) as view:
        counting = CountingSlide(view)
        result = SlideQC(focus=budget).run(counting, lambda done: None)
    # The overview comes from level 1; level 0 is read for focus only, within the budget (with
    # some slack: the lattice can hold a few more cells than wanted / stride^2), and a
    # lattice of cells still finds the blur.
    assert counting.pixels_read[0] <= 1.2e6
    assert result.heatmap("out of focus").values.max() >= DEFECT_VALUE
    assert result.scores["out_of_focus_fraction"] > 0.1


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs"])
def test_clean_real_slide_gets_no_rescan_flag(name: str) -> None:
    with tiffslide.TiffSlide(real_slide(name)) as view:
        result, _ = _run(SlideQC(), view)
    print(f"\n{name}: {result.scores}")
    assert result.flags == ()
    assert result.scores["tissue_fraction"] > 0.3
    assert result.scores["out_of_focus_fraction"] < 0.05 and result.scores["pen_fraction"] < 0.01
    assert result.heatmap("bubbles").values.max() < DEFECT_VALUE, "a bubble found on a clean slide"


def test_empty_glass_is_low_in_tissue_and_flagged_for_rescan(tmp_path: Path) -> None:
    with tiffslide.TiffSlide(make_glass_slide(tmp_path / "glass.tiff", seed=1)) as view:
        result, _ = _run(SlideQC(), view)
    assert result.scores["tissue_fraction"] < 0.005
    flag = result.flag(RESCAN)
    assert flag is not None and flag.reason.startswith("little or no tissue found")


def test_a_16_pixel_slide_is_one_cell_with_little_tissue() -> None:
    with tiffslide.TiffSlide(real_slide("small.svs")) as view:
        result, _ = _run(SlideQC(), view)
    assert all(h.values.shape == (1, 1) for h in result.heatmaps)
    assert result.flag(RESCAN) is not None


def test_a_fluorescence_slide_is_not_analysed() -> None:
    with tiffslide.TiffSlide(real_slide("test3-DAPI-2-387.ndpi")) as view:
        result, _ = _run(SlideQC(), view)
    flag = result.flag(NOT_ANALYSED)
    assert flag is not None and "fluorescence" in flag.reason
    assert result.heatmaps == ()


@pytest.fixture(scope="module")
def cmu_results() -> Iterator[tuple[Result, Result]]:
    with tiffslide.TiffSlide(real_slide("CMU-1-Small-Region.svs")) as view:
        yield _run(SlideQC(), view)[0], _run(StainAnalysis(), view)[0]


def test_stain_hotspots_lie_on_tissue_apart_from_each_other(cmu_results: tuple[Result, Result]) -> None:
    qc, stain = cmu_results
    tissue = qc.heatmap("tissue")
    assert [r.label.split(" (")[0] for r in stain.regions] == ["hotspot 1", "hotspot 2", "hotspot 3"]
    scores = [r.score for r in stain.regions]
    assert scores == sorted(scores, reverse=True) and scores[0] > stain.scores["nuclear_density"]
    boxes = []
    for region in stain.regions:
        assert re.fullmatch(r"hotspot \d \(nuclear density 0\.\d\d\)", region.label)
        xs, ys = zip(*region.polygon_level0, strict=True)
        x0, x1, y0, y1 = int(min(xs)), int(max(xs)), int(min(ys)), int(max(ys))
        assert 0 <= x0 < x1 <= 2220 and 0 <= y0 < y1 <= 2967
        cell = tissue.level0_cell_px
        under = tissue.values[y0 // cell : -(-y1 // cell), x0 // cell : -(-x1 // cell)]
        assert under.mean() >= 0.5, f"{region.label} is mostly off tissue"
        boxes.append((x0, x1, y0, y1))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2], "hotspots overlap"


def test_stain_heatmap_matches_the_qc_grid(cmu_results: tuple[Result, Result]) -> None:
    qc, stain = cmu_results
    density = stain.heatmap("nuclear density")
    assert density.level0_cell_px == qc.heatmap("tissue").level0_cell_px
    assert density.values.shape == qc.heatmap("tissue").values.shape == (12, 9)
    # Nuclei only where there is tissue.
    assert density.values[qc.heatmap("tissue").values == 0].max(initial=0.0) == 0.0
    assert stain.scores["haematoxylin_mean"] > 0.0 and stain.scores["eosin_mean"] > 0.0


def test_results_round_trip_through_json_with_version_and_parameters(
    cmu_results: tuple[Result, Result],
) -> None:
    for result, analysis in zip(cmu_results, (SlideQC(), StainAnalysis()), strict=True):
        text = json.dumps(result.to_json())
        again = Result.from_json(json.loads(text))
        assert again == result
        assert again.analysis == analysis.name and again.version == analysis.version
        assert again.parameters == analysis.parameters == json.loads(json.dumps(analysis.parameters))
    qc = cmu_results[0]
    assert qc.parameters["focus"]["blurred_ratio"] == 0.25 and qc.parameters["cell_um"] == 128.0


def test_heatmaps_refuse_values_outside_0_to_1_and_are_read_only() -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        Heatmap("x", 256, np.array([[0.5, 1.5]], np.float32), "")
    with pytest.raises(ValueError, match="2-D"):
        Heatmap("x", 256, np.zeros(3, np.float32), "")
    heatmap = Heatmap("x", 256, np.array([[0.25, 1.0]]), "legend")
    assert heatmap.values.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        heatmap.values[0, 0] = 0.5
