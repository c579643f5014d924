"""A snapshot of a slide region as a PNG: the pixels at the finest level that fits, the
annotations drawn over them, and a scale bar. Pure (no database, no web): the caller decides
who may, and stores it.

The PNG carries no text chunks, no file name and nothing else but pixels: what identifies it
is only what the caller stores beside it (a teaching snapshot stores no case at all).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from collab.slides.deepzoom import DeepZoomSlide, resize

# Longest side of a snapshot, in pixels: full resolution for any region up to this many level-0
# pixels across (a field at 40x is about 2,000), downsampled beyond it.
MAX_SNAPSHOT_PX = 4096
MIN_REGION_PX = 8


class SnapshotError(ValueError):
    """The region cannot be captured; the message says why, for the person who asked."""


@dataclass(frozen=True)
class Region:
    """A rectangle of the slide in level-0 pixels."""

    x: int
    y: int
    width: int
    height: int


def clip_region(slide: DeepZoomSlide, x: float, y: float, width: float, height: float) -> Region:
    """The part of the asked region that lies on the slide; refused when nothing does."""
    numbers = (x, y, width, height)
    if not all(_finite(n) for n in numbers):
        raise SnapshotError("x, y, width and height must be finite numbers of level-0 pixels.")
    left, top = max(0, math.floor(x)), max(0, math.floor(y))
    right, bottom = min(slide.width, math.ceil(x + width)), min(slide.height, math.ceil(y + height))
    if right - left < MIN_REGION_PX or bottom - top < MIN_REGION_PX:
        least = f"{MIN_REGION_PX} x {MIN_REGION_PX}"
        raise SnapshotError(f"The region must cover at least {least} pixels of the slide.")
    return Region(left, top, right - left, bottom - top)


def render(
    slide: DeepZoomSlide,
    region: Region,
    *,
    annotations: list[dict[str, Any]] = (),  # type: ignore[assignment]
    mpp: float | None = None,
    max_px: int = MAX_SNAPSHOT_PX,
) -> tuple[bytes, int, int]:
    """PNG bytes of ``region`` with ``annotations`` (the document's, in level-0 pixels) and a
    scale bar when ``mpp`` is known; and the image's width and height."""
    scale = min(1.0, max_px / max(region.width, region.height))  # image pixels per level-0 pixel
    out_w, out_h = max(1, round(region.width * scale)), max(1, round(region.height * scale))
    # The coarsest level that still has at least the pixels wanted.
    level = 0
    for i, lv in enumerate(slide.reader.levels):
        if lv.downsample <= 1 / scale + 1e-9:
            level = i
    lv = slide.reader.levels[level]
    ds = lv.downsample
    l_x, l_y = int(region.x / ds), int(region.y / ds)
    l_w = max(1, min(lv.width - l_x, math.ceil(region.width / ds)))
    l_h = max(1, min(lv.height - l_y, math.ceil(region.height / ds)))
    pixels = slide.reader.read_region(level, l_x, l_y, l_w, l_h)
    if pixels.shape[1] != out_w or pixels.shape[0] != out_h:
        pixels = resize(pixels, out_w, out_h)
    image = Image.fromarray(np.ascontiguousarray(pixels[:, :, :3])).convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, round(out_w / 80)))
    to_image = _projector(region, scale)
    for annotation in annotations:
        _draw_annotation(draw, annotation, to_image, font, max(2, round(out_w / 500)))
    if mpp:
        _draw_scale_bar(draw, out_w, out_h, mpp / scale, font)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue(), out_w, out_h


def _projector(region: Region, scale: float) -> Any:
    def to_image(point: Any) -> tuple[float, float] | None:
        if not (isinstance(point, list | tuple) and len(point) == 2):
            return None
        x, y = point
        if not (_finite(x) and _finite(y)):
            return None
        return ((x - region.x) * scale, (y - region.y) * scale)

    return to_image


def _finite(n: object) -> bool:
    return isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n)


HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _colour(value: object) -> str:
    text = str(value or "")
    return text if HEX_COLOUR.fullmatch(text) else "#e6194b"


def _draw_annotation(
    draw: ImageDraw.ImageDraw, annotation: dict[str, Any], to_image: Any, font: Any, line: int
) -> None:
    points = [p for p in (to_image(p) for p in annotation.get("points") or []) if p is not None]
    if not points:
        return
    colour = _colour(annotation.get("color"))
    kind = annotation.get("kind")
    if kind in ("point", "text"):
        x, y = points[0]
        r = line * 3
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline="#ffffff", width=max(1, line // 2))
    elif kind == "line" and len(points) >= 2:
        draw.line(points[:2], fill=colour, width=line)
    elif kind in ("rect", "ellipse") and len(points) >= 2:
        (x0, y0), (x1, y1) = points[:2]
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        (draw.rectangle if kind == "rect" else draw.ellipse)(box, outline=colour, width=line)
    elif kind in ("polygon", "freehand") and len(points) >= 2:
        closed = annotation.get("closed") is not False
        draw.line(points + (points[:1] if closed else []), fill=colour, width=line, joint="curve")
    label = str(annotation.get("label") or "")[:80]
    if label:
        x, y = points[0]
        left, top, right, bottom = draw.textbbox((x + line * 3, y - line * 3), label, font=font, anchor="ld")
        draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill="#000000")
        draw.text((x + line * 3, y - line * 3), label, fill="#ffffff", font=font, anchor="ld")


def _draw_scale_bar(
    draw: ImageDraw.ImageDraw, out_w: int, out_h: int, microns_per_px: float, font: Any
) -> None:
    """A bar of a round length (1, 2 or 5 times a power of ten) near a fifth of the width."""
    target = microns_per_px * out_w / 5
    power = 10 ** math.floor(math.log10(target))
    length = next(f * power for f in (5, 2, 1) if f * power <= target)
    bar_px = length / microns_per_px
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length:g} µm"
    margin = max(8, out_w // 60)
    thick = max(3, out_w // 300)
    x0, y1 = margin, out_h - margin
    left, top, right, _ = draw.textbbox((x0, y1 - thick - 4), label, font=font, anchor="ld")
    draw.rectangle((x0 - 6, top - 6, max(right, x0 + bar_px) + 6, y1 + 6), fill="#ffffff")
    draw.rectangle((x0, y1 - thick, x0 + bar_px, y1), fill="#000000")
    draw.text((x0, y1 - thick - 4), label, fill="#000000", font=font, anchor="ld")
