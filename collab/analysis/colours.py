"""The colour maps a heatmap layer is drawn in, and the drawing itself: one RGBA pixel per cell.

A fixed list, chosen by name (``?colours=`` on a layer's image): the viewer offers the same
names and draws each legend from the same stops (static/src/colourmaps.js, checked equal by
tests/test_analysis_colours.py). Every map rises from transparent at 0 to nearly opaque at 1,
so that low values leave the tissue visible beneath.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

DEFAULT = "viridis"
# Alpha of the five stops: the same ramp in every map, so that opacity means the same in each.
_ALPHA = (0, 150, 190, 220, 245)


def _stops(*rgb: tuple[int, int, int]) -> np.ndarray:
    return np.array([[*c, a] for c, a in zip(rgb, _ALPHA, strict=True)], dtype=np.float32)


COLOUR_MAPS: dict[str, np.ndarray] = {
    # Dark blue through teal to yellow (after viridis, readable by the colour-blind).
    "viridis": _stops((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)),
    # Black through purple and orange to pale yellow (after magma): a "heat" look.
    "magma": _stops((0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191)),
    # Light to black: for printing, or beside a colourful stain.
    "greys": _stops((240, 240, 240), (190, 190, 190), (130, 130, 130), (70, 70, 70), (0, 0, 0)),
}


def layer_png(values: np.ndarray, colours: str = DEFAULT) -> bytes:
    """One pixel per cell, coloured by value (0..1); NaN (no data there) fully transparent.

    ``colours`` must be a name in COLOUR_MAPS (KeyError otherwise)."""
    stops = COLOUR_MAPS[colours]
    missing = np.isnan(values)
    position = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(stops) - 1)
    low = np.minimum(position.astype(np.int32), len(stops) - 2)
    weight = (position - low)[..., None]
    rgba = stops[low] * (1 - weight) + stops[low + 1] * weight
    rgba[missing] = 0
    out = io.BytesIO()
    Image.fromarray(np.round(rgba).astype(np.uint8), "RGBA").save(out, format="PNG")
    return out.getvalue()
