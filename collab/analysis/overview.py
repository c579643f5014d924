"""The whole slide at ~8 µm/px, in optical density: where it is stained, and the slide's own
stain colours (so that what is not stain, such as ink, stands out on any lab's H&E)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collab.analysis.base import SlideView
from collab.analysis.grid import Grid, read_scaled, scaled_size
from collab.analysis.result import Flag

# The flag of a slide an analysis could not read.
NOT_ANALYSED = "not analysed"

# Optical density summed over R, G and B (natural log) above which a pixel is stained. Glass
# scans at about 0.1; the palest tissue at this scale at 0.4 or more.
STAINED_OD = 0.3
# A bright-field slide is mostly bright (glass, or tissue that lets most light through); a
# fluorescence slide is mostly dark. Median grey level below this: not bright-field.
_MIN_BRIGHTFIELD_MEDIAN = 80.0
_FIT_SAMPLE = 200_000  # pixels the colour model is fitted on: plenty, and bounded


@dataclass(frozen=True)
class Overview:
    """The slide at the grid's overview scale."""

    grid: Grid
    rgb: np.ndarray  # float32 (h, w, 3), 0..255
    od: np.ndarray  # float32 (h, w, 3): optical density of each channel against the glass
    od_sum: np.ndarray  # float32 (h, w)
    stained: np.ndarray  # bool (h, w)
    brightfield: bool

    @property
    def um_per_px(self) -> float:
        return self.grid.mpp * self.grid.l0_per_overview_px

    def area_px(self, um2: float) -> int:
        """How many overview pixels make an area of ``um2`` square micrometres."""
        return max(1, round(um2 / self.um_per_px**2))


def read_overview(slide: SlideView, grid: Grid) -> Overview:
    """Read the whole slide at the overview scale and convert it to optical density."""
    width, height = scaled_size(slide, grid.l0_per_overview_px)
    pixels = read_scaled(slide, grid.l0_per_overview_px, 0, 0, width, height)
    glass = glass_colour(pixels)
    od = np.log(glass / np.clip(pixels, 1.0, glass)).astype(np.float32)
    od_sum = od.sum(axis=2)
    brightfield = float(np.median(pixels.mean(axis=2))) >= _MIN_BRIGHTFIELD_MEDIAN
    return Overview(grid, pixels, od, od_sum, od_sum > STAINED_OD, brightfield)


def bright_field_overview(slide: SlideView, grid: Grid, reads: str) -> Overview | Flag:
    """The slide's overview, or the flag saying it was not analysed: a mostly dark slide
    (fluorescence) is not what these analyses read. ``reads``: what the analysis reads, said
    in the flag's reason."""
    overview = read_overview(slide, grid)
    if not overview.brightfield:
        return Flag(NOT_ANALYSED, f"the slide is mostly dark: fluorescence? {reads}")
    return overview


def glass_colour(pixels: np.ndarray) -> np.ndarray:
    """The colour of bare glass: the brightest pixels' (white balance differs by scanner).

    Kept near white: a slide with no glass at all must not make its palest tissue the
    reference, so the estimate never goes below 200 in any channel.
    """
    flat = pixels.reshape(-1, 3)[:: max(1, pixels.shape[0] * pixels.shape[1] // _FIT_SAMPLE)]
    return np.clip(np.percentile(flat, 99.5, axis=0), 200.0, 255.0).astype(np.float32)


def chromaticity(od: np.ndarray) -> np.ndarray:
    """The hue of absorption, independent of how much is absorbed: the direction of the OD
    vector, projected onto the plane perpendicular to grey. (..., 3) -> (..., 2)."""
    norm = np.maximum(np.linalg.norm(od, axis=-1, keepdims=True), 1e-6)
    unit = od / norm
    x = (unit[..., 0] - unit[..., 1]) / np.sqrt(2.0)
    y = (unit[..., 0] + unit[..., 1] - 2.0 * unit[..., 2]) / np.sqrt(6.0)
    return np.stack([x, y], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class StainColours:
    """The slide's stain hues: a robust Gaussian over the chromaticity of stained pixels.

    Fitted on the slide itself, since H&E hues differ from lab to lab (a fixed H&E reference
    puts one lab's tissue where another's ink would be). Trimming at 3 sigma, refitted a few
    times, keeps ink and other minorities from widening it.
    """

    centre: np.ndarray  # (2,)
    covariance: np.ndarray  # (2, 2)

    @classmethod
    def fit(cls, overview: Overview) -> StainColours:
        samples = chromaticity(overview.od[overview.stained])
        samples = samples[:: max(1, len(samples) // _FIT_SAMPLE)].astype(np.float64)
        if len(samples) < 10:  # nothing stained: any model will do, nothing is compared to it
            return cls(np.zeros(2), np.eye(2) * 1e-2)
        centre = np.median(samples, axis=0)
        covariance = _regularised(np.cov((samples - centre).T))
        for _ in range(6):
            inliers = samples[_mahalanobis(samples, centre, covariance) < 3.0]
            if len(inliers) < 10:
                break
            centre = inliers.mean(axis=0)
            # Trimming at 3 sigma cuts the tails off; widen a little to make up for it.
            covariance = _regularised(np.cov((inliers - centre).T) * 1.2)
        return cls(centre, covariance)

    def distance(self, chroma: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each chromaticity from the slide's stains."""
        return _mahalanobis(chroma, self.centre, self.covariance).astype(np.float32)

    def hue_position(self, chroma: np.ndarray) -> np.ndarray:
        """Position along the stains' main axis (from eosin-rich to haematoxylin-rich or the
        reverse), in chromaticity units."""
        _, vectors = np.linalg.eigh(self.covariance)
        return ((chroma - self.centre) @ vectors[:, -1]).astype(np.float32)


def _regularised(covariance: np.ndarray) -> np.ndarray:
    # A floor on the spread: a slide of one flat colour must not make every pixel an outlier.
    return np.asarray(covariance + np.eye(2) * 1e-5)


def _mahalanobis(x: np.ndarray, centre: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    d = x - centre
    return np.sqrt(np.einsum("...i,ij,...j->...", d, np.linalg.inv(covariance), d))
