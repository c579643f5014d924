"""Test slides with known defects, made from the real slides in ../shared/slides.

A real H&E slide is mirror-tiled onto a canvas of a few millimetres, then spoilt where a mask
says: patches of glass, folds (a band of tissue multiplied by a shifted copy of itself), out of
focus blobs (Gaussian blur), marker pen strokes (translucent ink, multiplied in) and, when asked
for, air bubbles under the coverslip (a thin dark rim round a paler, blurred inside). Defects do
not overlap, so each cell has one truth. The result is written as a pyramidal tiled JPEG TIFF
(downsample 4 per level) and returned with its level-0 masks.

Every choice a detector could lean on is drawn at random within a family: the ink's hue,
saturation, darkness and opacity, stroke widths and paths, blur sigmas, fold widths, shifts
and darkening, bubble sizes, shapes, rims and how washed out their inside is. Nothing real is
ever written into the repository: files go to tmp_path.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

# µm per level-0 pixel of each source. CMU-1's is in its header; the TCGA file states none, and
# its nuclei (6-8 px across) say it was saved at about 1 µm/px.
SOURCE_MPP = {"CMU-1-Small-Region.svs": 0.499, "tcga-cr-7395-01a-01-ts1.svs": 1.0}
# The part of each source that is mostly tissue (level-0 x0, y0, x1, y1): tiling all of CMU-1,
# a narrow strip on glass, would leave few cells where a fold or a blur could be.
SOURCE_CROP = {
    "CMU-1-Small-Region.svs": (520, 600, 1900, 2967),
    "tcga-cr-7395-01a-01-ts1.svs": (150, 300, 4300, 3400),
}
# What the bubble test slides carry: fewer of the other defects, to leave room for bubbles up to
# 3 mm across on a 4 x 3 mm slide, but some of each, so that none is taken for a bubble.
BUBBLE_SLIDE_COUNTS = {"glass": 1, "fold": 1, "blur": 1, "pen": 1, "bubble": 5}
_ROUGH = 8  # level-0 px per pixel of the generator's tissue map
_COARSE = 32  # level-0 px per pixel of the maps that place defects


@dataclass(frozen=True)
class DefectSlide:
    """A generated slide and where its defects are (level-0 boolean masks)."""

    path: Path
    l0_mpp: float
    masks: Mapping[str, np.ndarray]  # "tissue", "glass", "fold", "blur", "pen", "bubble"

    def coverage(self, name: str, l0_cell_px: int) -> np.ndarray:
        """Fraction of each grid cell that a mask covers (of the part inside the slide)."""
        mask = self.masks[name]
        h, w = mask.shape
        ys, xs = np.arange(0, h, l0_cell_px), np.arange(0, w, l0_cell_px)
        row_sums = np.add.reduceat(mask, ys, axis=0, dtype=np.int32)
        counts = np.add.reduceat(row_sums, xs, axis=1, dtype=np.int32)
        heights = np.diff(np.append(ys, h))[:, None]
        widths = np.diff(np.append(xs, w))[None, :]
        return np.asarray(counts / (heights * widths))


def read_level0(path: Path) -> np.ndarray:
    """All of a slide's level 0, RGB."""
    import tiffslide

    with tiffslide.TiffSlide(path) as slide:
        w, h = slide.dimensions
        return np.asarray(slide.read_region((0, 0), 0, (w, h), as_array=True)[..., :3])


def mosaic(source: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The source mirror-tiled (no seams) from a random offset, after a random quarter turn."""
    source = np.rot90(source, int(rng.integers(4)))
    h, w = source.shape[:2]
    # One period of the mirrored tiling is the source, flipped across, down, and both.
    period = np.concatenate([source, source[::-1]], axis=0)
    period = np.concatenate([period, period[:, ::-1]], axis=1)
    shifted = np.roll(period, (-int(rng.integers(2 * h)), -int(rng.integers(2 * w))), axis=(0, 1))
    out = np.empty((height, width, 3), np.uint8)  # filled by block copies: memory is slow here
    for y in range(0, height, 2 * h):
        for x in range(0, width, 2 * w):
            rows, cols = min(2 * h, height - y), min(2 * w, width - x)
            out[y : y + rows, x : x + cols] = shifted[:rows, :cols]
    return out


def tissue_map(image: np.ndarray) -> np.ndarray:
    """Where an image has tissue, at 1/_ROUGH scale: stained (optical density above glass)
    after smoothing, so pale gaps inside tissue still count. The generator's own truth."""
    small = np.asarray(Image.fromarray(image).reduce(_ROUGH), np.float32)  # box mean
    od = -np.log10((small + 1) / 256).sum(axis=2)
    return np.asarray(ndimage.uniform_filter(od, 5) > 0.25)


def _upscale(small: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape[:2], bool)
    big = np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)[: shape[0], : shape[1]]
    out[: big.shape[0], : big.shape[1]] = big
    return out


# A shape drawn on a grid: (level-0 y0, x0 of the grid's corner, rows, cols, level-0 px per
# grid pixel) -> inside. Defects are placed on a coarse grid, then drawn at level 0 in their box.
Raster = Callable[[int, int, int, int, int], np.ndarray]


def _analytic(inside: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Raster:
    def raster(y0: int, x0: int, rows: int, cols: int, step: int) -> np.ndarray:
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
        return inside(y0 + (yy + 0.5) * step, x0 + (xx + 0.5) * step)

    return raster


class _Canvas:
    """The image being spoilt, and the coarse maps that place defects: where there is tissue,
    and where a defect already is (with a margin), so that defects never touch."""

    def __init__(self, image: np.ndarray, mpp: float, rng: np.random.Generator) -> None:
        self.image, self.mpp, self.rng = image, mpp, rng
        self.rows, self.cols = -(-image.shape[0] // _COARSE), -(-image.shape[1] // _COARSE)
        self.taken = np.zeros((self.rows, self.cols), bool)
        self.margin = max(1, round(100 / mpp / _COARSE))
        self.tissue = self.rough_tissue()

    def rough_tissue(self) -> np.ndarray:
        """Where the canvas has tissue now, on the coarse grid."""
        fine = tissue_map(self.image)
        k = _COARSE // _ROUGH
        out = np.zeros((self.rows * k, self.cols * k), np.float32)
        out[: fine.shape[0], : fine.shape[1]] = fine
        return np.asarray(out.reshape(self.rows, k, self.cols, k).mean(axis=(1, 3)) >= 0.5)

    def tissue_spot(self) -> tuple[float, float]:
        """A random level-0 (y, x) on tissue."""
        ys, xs = np.nonzero(self.tissue)
        i = int(self.rng.integers(len(ys)))
        return (ys[i] + self.rng.random()) * _COARSE, (xs[i] + self.rng.random()) * _COARSE

    def place(self, shape: Raster, *, on_tissue: float = 0.0) -> tuple[np.ndarray, slice, slice] | None:
        """The shape drawn at level 0 in its box, if it is clear of other defects and (at least
        ``on_tissue`` of it) on tissue; else None."""
        coarse = shape(0, 0, self.rows, self.cols, _COARSE)
        if not coarse.any() or (coarse & self.taken).any():
            return None
        if on_tissue and self.tissue[coarse].mean() < on_tissue:
            return None
        ys, xs = np.nonzero(coarse)
        y0, y1 = max(0, ys.min() - 1) * _COARSE, min(self.image.shape[0], (ys.max() + 2) * _COARSE)
        x0, x1 = max(0, xs.min() - 1) * _COARSE, min(self.image.shape[1], (xs.max() + 2) * _COARSE)
        self.taken |= ndimage.binary_dilation(coarse, iterations=self.margin)
        return shape(y0, x0, y1 - y0, x1 - x0, 1), slice(y0, y1), slice(x0, x1)


def _blob(canvas: _Canvas) -> Raster:
    """A wobbly rotated ellipse on tissue, 0.5-1.3 mm across."""
    rng, mpp = canvas.rng, canvas.mpp
    cy, cx = canvas.tissue_spot()
    ry, rx = rng.uniform(250, 650) / mpp, rng.uniform(250, 650) / mpp
    angle = rng.uniform(0, math.pi)
    waves = [(k, rng.uniform(0, 0.12), rng.uniform(0, 6.3)) for k in (2, 3, 5)]

    def inside(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = (yy - cy) * math.cos(angle) - (xx - cx) * math.sin(angle)
        theta = np.arctan2(v, u)
        wobble = 1 + sum(a * np.cos(k * theta + phase) for k, a, phase in waves)
        return np.asarray(np.hypot(u / rx, v / ry) < wobble)

    return _analytic(inside)


def _rectangle(canvas: _Canvas) -> Raster:
    """An upright rectangle 0.5-1.1 mm on a side, anywhere."""
    rng, mpp = canvas.rng, canvas.mpp
    gh, gw = (rng.uniform(500, 1100) / mpp for _ in range(2))
    gy, gx = rng.uniform(0, canvas.image.shape[0] - gh), rng.uniform(0, canvas.image.shape[1] - gw)

    def inside(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return np.asarray((yy >= gy) & (yy < gy + gh) & (xx >= gx) & (xx < gx + gw))

    return _analytic(inside)


def _band(canvas: _Canvas, length: float, width: float, angle: float) -> Raster:
    """A straight band with gently wavy sides, centred on tissue (level-0 px, radians)."""
    rng = canvas.rng
    cy, cx = canvas.tissue_spot()
    period, phase = width * rng.uniform(0.6, 1.5), rng.uniform(0, 6.3)

    def inside(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = (yy - cy) * math.cos(angle) - (xx - cx) * math.sin(angle)
        edge = width / 2 * (1 + 0.15 * np.sin(u / period + phase))
        return np.asarray((np.abs(v) < edge) & (np.abs(u) < length / 2))

    return _analytic(inside)


def add_glass(canvas: _Canvas, count: int) -> np.ndarray:
    """Rectangles of bare glass (the slide's own background brightness, with sensor noise)."""
    image, rng = canvas.image, canvas.rng
    mask = np.zeros(image.shape[:2], bool)
    glass = np.percentile(image.reshape(-1, 3)[::97], 99.5, axis=0) - 1
    for _ in range(count):
        for _attempt in range(60):
            placed = canvas.place(_rectangle(canvas))
            if placed is not None:
                box, ys, xs = placed
                noise = rng.normal(0, 1.5, (*box.shape, 1))
                pixels = np.clip(glass + noise, 0, 255).astype(np.uint8)
                image[ys, xs] = np.where(box[..., None], pixels, image[ys, xs])
                mask[ys, xs] |= box
                break
    canvas.tissue = canvas.rough_tissue()
    return mask


def add_folds(canvas: _Canvas, count: int, tissue: np.ndarray) -> np.ndarray:
    """Bands where the section folded over itself: the band multiplied by a shifted copy of the
    tissue beside it (two layers absorb twice), so darker and more saturated. The mask is where
    both layers are tissue."""
    image, rng, mpp = canvas.image, canvas.rng, canvas.mpp
    mask = np.zeros(image.shape[:2], bool)
    for _ in range(count):
        for _attempt in range(100):
            length, width = rng.uniform(900, 2000) / mpp, rng.uniform(180, 420) / mpp
            shift = rng.uniform(0.35, 0.9) * width * rng.choice([-1, 1])
            angle = rng.uniform(0, math.pi)
            placed = canvas.place(_band(canvas, length, width, angle), on_tissue=0.9)
            if placed is None:
                continue
            box, ys, xs = placed
            dy, dx = round(shift * math.cos(angle)), round(-shift * math.sin(angle))
            # The layer on top: the tissue ``shift`` away (the box has room: nothing else is near).
            src_y = slice(ys.start - dy, ys.stop - dy)
            src_x = slice(xs.start - dx, xs.stop - dx)
            if (
                src_y.start < 0
                or src_x.start < 0
                or src_y.stop > image.shape[0]
                or src_x.stop > image.shape[1]
            ):
                continue
            under = image[ys, xs].astype(np.float32)
            over = image[src_y, src_x].astype(np.float32)
            darkening = rng.uniform(0.8, 1.15)  # some folds press flatter than others
            folded = under * (over / 255) ** darkening
            image[ys, xs] = np.where(box[..., None], folded + 0.5, under).astype(np.uint8)
            mask[ys, xs] |= box & tissue[ys, xs] & tissue[src_y, src_x]
            break
    return mask


def add_blur(canvas: _Canvas, count: int) -> np.ndarray:
    """Out-of-focus blobs: Gaussian blur, sigma 1.5-4 µm, inside a wobbly ellipse on tissue."""
    image, rng, mpp = canvas.image, canvas.rng, canvas.mpp
    mask = np.zeros(image.shape[:2], bool)
    for _ in range(count):
        for _attempt in range(100):
            placed = canvas.place(_blob(canvas), on_tissue=0.6)
            if placed is not None:
                blob, ys, xs = placed
                sigma = rng.uniform(1.5, 4.0) / mpp
                # Pillow's GaussianBlur (its radius is the standard deviation) is 10x scipy's speed.
                blurred = np.asarray(Image.fromarray(image[ys, xs]).filter(ImageFilter.GaussianBlur(sigma)))
                image[ys, xs] = np.where(blob[..., None], blurred, image[ys, xs])
                mask[ys, xs] |= blob
                break
    return mask


def ink_colour(rng: np.random.Generator, family: str) -> np.ndarray:
    """The colour (RGB 0..1) a marker's ink filters light to, drawn within a colour family."""
    if family == "black":
        grey = rng.uniform(0.05, 0.25)
        return np.asarray(np.clip(grey + rng.normal(0, 0.03, 3), 0, 1))
    hue = {"blue": (0.56, 0.68), "green": (0.27, 0.45), "red": (-0.03, 0.03)}[family]
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(0.6, 0.95), rng.uniform(0.45, 0.9))
    return np.array([r, g, b])


def _stroke(canvas: _Canvas) -> Raster:
    """A hand-drawn marker line: a random walk with a smoothly turning heading, or a loop around
    an area of interest; 200-650 µm wide."""
    rng, mpp = canvas.rng, canvas.mpp
    h, w = canvas.image.shape[:2]
    y, x = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    width, step = rng.uniform(200, 650) / mpp, 60 / mpp
    if rng.random() < 0.3:
        ry, rx = rng.uniform(500, 1100) / mpp, rng.uniform(500, 1100) / mpp
        turn, start = rng.uniform(0.8, 1.05) * 2 * math.pi, rng.uniform(0, 2 * math.pi)
        n = int(turn * (rx + ry) / 2 / step)
        points = [
            (x + rx * math.cos(start + turn * i / n), y + ry * math.sin(start + turn * i / n))
            for i in range(n + 1)
        ]
    else:
        heading, bend = rng.uniform(0, 2 * math.pi), 0.0
        points = [(x, y)]
        for _ in range(int(rng.uniform(1500, 3500) / 60)):
            bend = 0.8 * bend + rng.normal(0, 0.05)
            heading += bend
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            points.append((x, y))

    def raster(y0: int, x0: int, rows: int, cols: int, step_px: int) -> np.ndarray:
        image = Image.new("L", (cols, rows), 0)
        local = [((px - x0) / step_px, (py - y0) / step_px) for px, py in points]
        ImageDraw.Draw(image).line(local, fill=255, width=max(1, round(width / step_px)), joint="curve")
        return np.asarray(image) > 127

    return raster


def add_pen(canvas: _Canvas, count: int) -> np.ndarray:
    """Marker strokes: translucent ink multiplied in, a little streaky, with soft edges."""
    image, rng, mpp = canvas.image, canvas.rng, canvas.mpp
    mask = np.zeros(image.shape[:2], bool)
    families = ["blue", "green", "black", "red"]
    rng.shuffle(families)
    for i in range(count):
        for _attempt in range(100):
            placed = canvas.place(_stroke(canvas))
            if placed is None:
                continue
            stroke, ys, xs = placed
            ink = ink_colour(rng, families[i % len(families)])
            opacity = rng.uniform(0.55, 0.95)
            # Streaks and an uneven lay of ink, as a felt tip leaves them.
            streaks = ndimage.gaussian_filter(rng.normal(0, 1, stroke.shape).astype(np.float32), 6 / mpp)
            streaks /= streaks.std() + 1e-9
            alpha = ndimage.gaussian_filter(stroke.astype(np.float32), 1.5 / mpp)
            alpha = np.clip(alpha * opacity * (1 - 0.12 * streaks), 0, 1)[..., None]
            under = image[ys, xs].astype(np.float32)
            image[ys, xs] = (under * (1 - alpha + alpha * ink) + 0.5).astype(np.uint8)
            mask[ys, xs] |= stroke
            break
    return mask


def _bubble_outline(canvas: _Canvas) -> tuple[Raster, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """A bubble's shape: a nearly round ellipse 0.3-3 mm across (log-uniform: small ones are
    commoner), wholly inside the slide, centred on tissue or anywhere (then often half on glass).
    Returns the raster of its inside and, for drawing the rim, the level-0 distance in from its
    edge (negative outside)."""
    rng, mpp = canvas.rng, canvas.mpp
    h, w = canvas.image.shape[:2]
    diameter = math.exp(rng.uniform(math.log(300), math.log(3000))) / mpp
    rx = diameter / 2
    ry = rx * rng.uniform(0.7, 1.0)
    angle = rng.uniform(0, math.pi)
    wobble = [(k, rng.uniform(0, 0.03), rng.uniform(0, 6.3)) for k in (3, 4)]  # not quite an ellipse
    if rng.random() < 0.7:
        cy, cx = canvas.tissue_spot()
    else:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    cy, cx = float(np.clip(cy, rx + 64, h - rx - 64)), float(np.clip(cx, rx + 64, w - rx - 64))

    def depth(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = (yy - cy) * math.cos(angle) - (xx - cx) * math.sin(angle)
        theta = np.arctan2(v, u)
        edge = 1 + sum(a * np.cos(k * theta + phase) for k, a, phase in wobble)
        # Distance in from the edge, near enough for a thin rim: radial shortfall times radius.
        return np.asarray(
            (edge - np.hypot(u / rx, v / ry)) * np.hypot(u, v) / np.maximum(np.hypot(u / rx, v / ry), 1e-6)
        )

    return _analytic(lambda yy, xx: np.asarray(depth(yy, xx) > 0)), depth


def add_bubbles(canvas: _Canvas, count: int) -> np.ndarray:
    """Air bubbles under the coverslip: a thin dark grey rim (light refracted away at the
    air-mountant edge: no hue of its own, so it multiplies every channel alike), darker on one
    side than the other; inside, the tissue washed towards the glass and out of focus. The mask
    is the bubble with its rim."""
    image, rng, mpp = canvas.image, canvas.rng, canvas.mpp
    mask = np.zeros(image.shape[:2], bool)
    glass = np.percentile(image.reshape(-1, 3)[::97], 99.5, axis=0)
    for _ in range(count):
        for _attempt in range(100):
            raster, depth = _bubble_outline(canvas)
            placed = canvas.place(raster)
            if placed is None:
                continue
            bubble, ys, xs = placed
            yy, xx = np.mgrid[ys, xs].astype(np.float32)
            inward = depth(yy, xx)  # level-0 px in from the edge
            under = image[ys, xs].astype(np.float32)
            # Inside: washed out (the air gap scatters light) and blurred (out of the focal plane).
            wash = rng.uniform(0.25, 0.7)
            sigma = rng.uniform(1.0, 3.0) / mpp
            soft = np.asarray(
                Image.fromarray(image[ys, xs]).filter(ImageFilter.GaussianBlur(sigma)), np.float32
            )
            inside = soft + wash * (glass - soft)
            out = np.where(bubble[..., None], inside, under)
            # The rim: a dark band 5-25 µm wide with soft edges, its strength varying round it.
            width = rng.uniform(5, 25) / mpp
            transmit = rng.uniform(0.15, 0.5)
            theta = np.arctan2(yy - yy.mean(), xx - xx.mean())
            fade = rng.uniform(0, 0.5) * (1 + np.cos(theta - rng.uniform(0, 6.3))) / 2
            band = np.exp(-(((inward - width / 2) / (width / 2)) ** 4))  # flat-topped, soft edges
            darkness = (1 - transmit) * (1 - fade) * band
            out = out * (1 - darkness[..., None])
            image[ys, xs] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
            mask[ys, xs] |= bubble
            break
    return mask


def write_pyramid(path: Path, image: np.ndarray, mpp: float, *, levels: int = 3, quality: int = 85) -> Path:
    """A tiled JPEG TIFF pyramid, downsample 4 per level (box mean), stating its µm/px."""
    res = 10_000.0 / mpp  # px per cm
    with tifffile.TiffWriter(path) as tif:
        level = image
        for k in range(levels):
            tif.write(
                level,
                tile=(256, 256),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": quality},
                resolution=(res / 4**k, res / 4**k),
                resolutionunit="CENTIMETER",
                subfiletype=1 if k else 0,
                metadata=None,
                maxworkers=2,
            )
            if min(level.shape[:2]) < 1024:
                break
            level = np.asarray(Image.fromarray(level).reduce(4))  # box mean
    return path


def make_defect_slide(
    path: Path,
    source: Path,
    seed: int,
    *,
    size_um: tuple[float, float] = (4000, 3000),
    counts: Mapping[str, int] | None = None,
) -> DefectSlide:
    """A slide of real tissue with glass patches, folds, blur, pen strokes and (if counted) air
    bubbles where its masks say."""
    counts = {"glass": 1, "fold": 2, "blur": 3, "pen": 3, "bubble": 0, **(counts or {})}
    mpp = SOURCE_MPP[source.name]
    rng = np.random.default_rng(seed)
    width, height = (int(s / mpp) // 64 * 64 for s in size_um)
    x0, y0, x1, y1 = SOURCE_CROP[source.name]
    canvas = _Canvas(mosaic(read_level0(source)[y0:y1, x0:x1], height, width, rng), mpp, rng)
    masks = {"glass": add_glass(canvas, counts["glass"])}
    masks["tissue"] = _upscale(tissue_map(canvas.image), _ROUGH, canvas.image.shape)
    masks["fold"] = add_folds(canvas, counts["fold"], masks["tissue"])
    masks["blur"] = add_blur(canvas, counts["blur"])
    masks["pen"] = add_pen(canvas, counts["pen"])
    # Last, so that a slide without bubbles draws the same random numbers as before they existed.
    masks["bubble"] = add_bubbles(canvas, counts["bubble"])
    return DefectSlide(write_pyramid(path, canvas.image, mpp), mpp, masks)


def make_glass_slide(
    path: Path, seed: int, *, mpp: float = 0.5, size_um: tuple[float, float] = (2000, 1500)
) -> Path:
    """A slide with no tissue: bluish-white glass, sensor noise and a few specks of dust."""
    rng = np.random.default_rng(seed)
    width, height = (int(s / mpp) // 64 * 64 for s in size_um)
    glass = np.array([rng.uniform(232, 246), rng.uniform(232, 246), rng.uniform(238, 250)])
    image = np.clip(glass + rng.normal(0, 1.5, (height, width, 1)), 0, 255).astype(np.uint8)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for _ in range(12):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, 20) / mpp
        shade = int(rng.uniform(60, 160))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(shade, shade, shade))
    return write_pyramid(path, np.asarray(canvas), mpp)
