"""Air bubbles under the coverslip: a round area closed off by a thin, dark, grey rim.

At the edge of a bubble, light is refracted out of the objective: a dark line with no hue of
its own, so it adds optical density to every channel alike, where stain adds it mostly to some.
The least-absorbed channel's optical density therefore shows the rim over glass and over tissue
alike. A rim is thin (tens of µm), which tells it from a marker line (hundreds): only structures
narrower than ``rim_um`` are kept (a top-hat). What such lines close off, if it is near an
ellipse and at least ``min_diameter_um`` across, is a candidate.

No one threshold on the line suits every rim: low, a rim over dark tissue merges with the
tissue's own thin structures; high, a faint rim has gaps. So the rim is thresholded at several
levels and a candidate found at any of them counts (each must pass every test).

Round gaps in a section are also closed off by a thin dark line (the section's edge), so a
candidate whose inside is much paler than its surroundings (glass ringed by tissue) is not a
bubble: a bubble over tissue washes it out but leaves a fair part of its optical density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from collab.analysis.overview import Overview


@dataclass(frozen=True)
class BubbleFinder:
    """``rim_od``: how far a line must stand above its surroundings to be rim (optical
    density of the least-absorbed channel, natural log, at ~8 µm/px, averaged along the
    best-aligned ``rim_length_um`` of line), at the lowest of the levels tried.
    ``min_overlap``: how well (intersection over union) a bubble matches the ellipse with its
    moments. Tuned on the test slides of tests/qc_data.py with seeds 101-105."""

    rim_um: float = 40.0
    rim_length_um: float = 120.0
    # Levels rim_od, rim_od * step, ... (count of them): from faint rims to clear ones.
    rim_od: float = 0.1
    rim_od_step: float = math.sqrt(2.0)
    rim_od_levels: int = 5
    min_inside_od_ratio: float = 0.2
    min_diameter_um: float = 250.0
    min_overlap: float = 0.85
    min_axis_ratio: float = 0.5
    max_inked_edge: float = 0.25
    orientations: int = 12
    close_px: int = 3

    def find(self, overview: Overview, ink: np.ndarray) -> np.ndarray:
        """Boolean (h, w) overview mask of bubbles, rim included. ``ink``: the overview's pen
        mask; a marker stroke's streaky edge is a dark line too, and may close off an area."""
        um = overview.um_per_px
        od_min = overview.od.min(axis=2)
        # Grey opening removes lines narrower than the footprint; what it removed is the line.
        size = max(3, round(self.rim_um / um) | 1)
        line = (od_min - ndimage.grey_opening(od_min, size=(size, size))).astype(np.float32)
        # A rim is a long smooth curve; tissue's thin structures are short and kinked: the
        # mean along the best-aligned short segment keeps the first and dims the second.
        length = max(3, round(self.rim_length_um / um) | 1)
        along = _best_segment_mean(line, length, self.orientations)
        # Pen strokes are 200 µm wide or more; a rim, also dark and grey, can pass for ink, so
        # only ink too wide to be rim counts against a candidate.
        wide = max(3, round(self.rim_um * 1.5 / um) | 1)
        strokes = _opened(ink, wide)
        out = np.zeros(od_min.shape, bool)
        for k in range(self.rim_od_levels):
            level = self.rim_od * self.rim_od_step**k
            rim = _closed(along > level, self.close_px)
            out |= self._closed_off(rim, overview, strokes)
        return out

    def _closed_off(self, rim: np.ndarray, overview: Overview, strokes: np.ndarray) -> np.ndarray:
        """The round areas that a rim mask closes off and that pass for bubbles, with their rim."""
        um = overview.um_per_px
        labels = _holes(rim)
        out = np.zeros(rim.shape, bool)
        # The inside alone: the rim takes a little off a bubble's area.
        min_area_px = math.pi * (self.min_diameter_um / um / 2) ** 2 * 0.7
        areas = np.bincount(labels.ravel())
        for label, where in enumerate(ndimage.find_objects(labels), start=1):
            if where is None or areas[label] < min_area_px:
                continue
            pad = 12  # room for the rings round the candidate that the tests look at
            box = tuple(slice(max(0, s.start - pad), s.stop + pad) for s in where)
            # Specks of line left inside (tissue under the bubble) are closed over.
            shape = ndimage.binary_fill_holes(labels[box] == label)
            if (
                self._round(shape)
                and self._not_a_hole(shape, overview.od_sum[box])
                and self._not_inked(shape, strokes[box])
            ):
                # The rim belongs to the bubble: grow over the rim next to the inside.
                out[box] |= shape | (ndimage.binary_dilation(shape, iterations=3) & rim[box])
        return out

    def _round(self, shape: np.ndarray) -> bool:
        """Close to an ellipse: the one with the shape's second moments (a uniform ellipse of
        semi-axis a has variance a²/4 along it) overlaps it by ``min_overlap`` or more."""
        rows, cols = np.nonzero(shape)
        coords = np.stack([rows, cols]).astype(np.float64)
        centre = coords.mean(axis=1, keepdims=True)
        covariance = np.cov(coords)
        eigen = np.linalg.eigvalsh(covariance)
        if eigen[0] <= 0 or math.sqrt(eigen[0] / eigen[1]) < self.min_axis_ratio:
            return False
        yy, xx = np.mgrid[0 : shape.shape[0], 0 : shape.shape[1]]
        d = np.stack([yy.ravel(), xx.ravel()]) - centre
        inside = (np.einsum("in,ij,jn->n", d, np.linalg.inv(covariance), d) <= 4.0).reshape(shape.shape)
        overlap = (inside & shape).sum() / max(int((inside | shape).sum()), 1)
        return bool(overlap >= self.min_overlap)

    def _not_inked(self, inside: np.ndarray, ink: np.ndarray) -> bool:
        """Not closed off by pen: little ink on or just beside the outline."""
        edge = ndimage.binary_dilation(inside, iterations=4) & ~ndimage.binary_erosion(inside, iterations=2)
        return float(ink[edge].mean()) <= self.max_inked_edge

    def _not_a_hole(self, inside: np.ndarray, od_sum: np.ndarray) -> bool:
        """Not bare glass ringed by tissue. A gap in a section is closed off by the section's
        thin dark edge, and may be round; but a bubble lies over whatever is there and only
        washes it out: its inside keeps a fair share of its surroundings' optical density."""
        outside = ndimage.binary_dilation(inside, iterations=8) & ~ndimage.binary_dilation(
            inside, iterations=4
        )
        within = ndimage.binary_erosion(inside, iterations=3)
        if not (outside.any() and within.any()):
            return False
        return float(od_sum[within].mean()) >= self.min_inside_od_ratio * float(od_sum[outside].mean())


def _best_segment_mean(values: np.ndarray, length: int, orientations: int) -> np.ndarray:
    """At each pixel, the largest mean of ``values`` along a straight segment of ``length``
    pixels centred there, over evenly spaced orientations (shifted adds: no convolution)."""
    h, w = values.shape
    r = length // 2
    padded = np.pad(values, r)
    best = np.zeros_like(values)
    for k in range(orientations):
        angle = math.pi * k / orientations
        total = np.zeros_like(values)
        for i in range(-r, r + 1):
            dy, dx = round(i * math.sin(angle)), round(i * math.cos(angle))
            total += padded[r + dy : r + dy + h, r + dx : r + dx + w]
        np.maximum(best, total, out=best)
    return best / np.float32(2 * r + 1)


# Morphology on square footprints by shifted ORs and ANDs (separable, edges as if repeated):
# scipy's binary operators (and binary_fill_holes, an iterated dilation) take ~0.1 s each on the
# overview of a 46,000 px slide, its min and max filters ~7 ms a pass; these ~1 ms.


def _spread(mask: np.ndarray, size: int, *, grow: bool) -> np.ndarray:
    out = mask.copy()
    for axis in (0, 1):
        source = out.copy()
        for shift in range(1, size // 2 + 1):
            ahead = [slice(None)] * 2
            behind = [slice(None)] * 2
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            if grow:
                out[tuple(ahead)] |= source[tuple(behind)]
                out[tuple(behind)] |= source[tuple(ahead)]
            else:
                out[tuple(ahead)] &= source[tuple(behind)]
                out[tuple(behind)] &= source[tuple(ahead)]
    return out


def _closed(mask: np.ndarray, size: int) -> np.ndarray:
    return _spread(_spread(mask, size, grow=True), size, grow=False)


def _opened(mask: np.ndarray, size: int) -> np.ndarray:
    return _spread(_spread(mask, size, grow=False), size, grow=True)


def _holes(mask: np.ndarray) -> np.ndarray:
    """Labels of the parts of the background (4-connected) that the mask closes off: those
    that do not reach the image's edge."""
    labels, count = ndimage.label(~mask)
    closed_off = np.ones(count + 1, bool)
    closed_off[labels[0]] = closed_off[labels[-1]] = False
    closed_off[labels[:, 0]] = closed_off[labels[:, -1]] = False
    closed_off[0] = False
    return np.where(closed_off[labels], labels, 0)
