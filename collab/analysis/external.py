"""Results an outside tool posts (a vendor's AI, a laboratory's own script), read into a
``Result`` exactly like one computed here, with the tool named as its source.

The body (docs/analysis.md, "Results from outside tools")::

    {"tool": "Vendor QC", "analysis": "vendor-qc", "version": "2.1", "parameters": {},
     "scores": {"tumour likelihood": 0.93},
     "flags": [{"name": "urgent review suggested", "reason": "tumour likely"}],
     "heatmaps": [{"name": "tumour", "legend": "...", "level0_cell_px": 256,
                   "image_base64": "<PNG or TIFF, one channel, one pixel per cell>"}],
     "regions": {"type": "FeatureCollection", "features": [...]}}

A heatmap's image is 8-bit (0..255), 16-bit (0..65535) or 32-bit float (0..1, NaN for no data)
grey, and its grid must cover the slide: as many cells as the slide needs, no more. Regions are
GeoJSON polygons in level-0 pixels, each with ``properties.label`` and optionally ``score``.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from typing import Any

import numpy as np
from PIL import Image

from collab.analysis.result import Flag, Heatmap, Region, Result

MAX_NAME = 80
MAX_REASON = 300
MAX_SCORES = 50
MAX_FLAGS = 20
MAX_HEATMAPS = 10
MAX_CELLS = 2048  # per side of a heatmap's grid
MAX_REGIONS = 500
MAX_POINTS = 5000  # per region


class ExternalRefused(ValueError):
    """The posted result cannot be stored; the message says why, for the tool's author."""


def external_result(body: dict[str, Any], slide_width: int, slide_height: int) -> tuple[str, Result]:
    """The tool's name and its result, checked against a slide of that size (level-0 pixels)."""
    tool = _name(body.get("tool"), "tool")
    analysis = _name(body.get("analysis", tool), "analysis")
    version = _name(body.get("version"), "version")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ExternalRefused("parameters must be an object")
    scores = body.get("scores", {})
    if not isinstance(scores, dict) or len(scores) > MAX_SCORES:
        raise ExternalRefused(f"scores must be an object of at most {MAX_SCORES} names and numbers")
    for key, value in scores.items():
        _name(key, "a score's name")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ExternalRefused(f"the score {key!r} must be a number")
    flags = [_flag(f) for f in _list(body.get("flags", []), "flags", MAX_FLAGS)]
    heatmaps = [
        _heatmap(h, slide_width, slide_height)
        for h in _list(body.get("heatmaps", []), "heatmaps", MAX_HEATMAPS)
    ]
    regions = _regions(
        body.get("regions", {"type": "FeatureCollection", "features": []}), slide_width, slide_height
    )
    if not (scores or flags or heatmaps or regions):
        raise ExternalRefused("send at least one score, flag, heatmap or region")
    result = Result(
        analysis,
        version,
        parameters,
        scores={k: float(v) for k, v in scores.items()},
        flags=tuple(flags),
        heatmaps=tuple(heatmaps),
        regions=tuple(regions),
    )
    return tool, result


def _name(value: Any, what: str, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ExternalRefused(f"{what} must be text of 1 to {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise ExternalRefused(f"{what} must be one line of text")
    return value.strip()


def _list(value: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise ExternalRefused(f"{what} must be a list of at most {limit}")
    return value


def _flag(value: Any) -> Flag:
    if not isinstance(value, dict):
        raise ExternalRefused("each flag must be an object with a name and a reason")
    return Flag(
        _name(value.get("name"), "a flag's name"), _name(value.get("reason"), "a flag's reason", MAX_REASON)
    )


def _heatmap(value: Any, slide_width: int, slide_height: int) -> Heatmap:
    if not isinstance(value, dict):
        raise ExternalRefused("each heatmap must be an object")
    name = _name(value.get("name"), "a heatmap's name")
    legend = _name(value.get("legend", name), "a heatmap's legend", MAX_REASON)
    cell = value.get("level0_cell_px")
    if isinstance(cell, bool) or not isinstance(cell, int) or not 1 <= cell <= max(slide_width, slide_height):
        raise ExternalRefused(f"heatmap {name!r}: level0_cell_px must be a whole number of level-0 pixels")
    try:
        data = base64.b64decode(str(value.get("image_base64", "")), validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width > MAX_CELLS or image.height > MAX_CELLS:
                    raise ExternalRefused(f"heatmap {name!r}: at most {MAX_CELLS} cells a side")
                values = _values(image, name)
    except ExternalRefused:
        raise
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombWarning) as exc:
        raise ExternalRefused(f"heatmap {name!r}: image_base64 is not a PNG or TIFF image ({exc})") from None
    rows, cols = values.shape
    want = (math.ceil(slide_height / cell), math.ceil(slide_width / cell))
    if (rows, cols) != want:
        raise ExternalRefused(
            f"heatmap {name!r}: a grid of {cell}-pixel cells over this {slide_width} x {slide_height} slide"
            f" is {want[1]} x {want[0]} cells, not {cols} x {rows}"
        )
    return Heatmap(name, cell, values, legend)


def _values(image: Image.Image, name: str) -> np.ndarray:
    if image.mode == "L":
        return np.asarray(image, dtype=np.float32) / 255.0
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        finite = values[~np.isnan(values)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ExternalRefused(f"heatmap {name!r}: float values must be from 0 to 1 (NaN: no data)")
        return values
    raise ExternalRefused(f"heatmap {name!r}: one grey channel (8-bit, 16-bit or float), not {image.mode}")


def _regions(value: Any, slide_width: int, slide_height: int) -> list[Region]:
    if isinstance(value, dict) and value.get("type") == "FeatureCollection":
        features = _list(value.get("features"), "regions' features", MAX_REGIONS)
    else:
        raise ExternalRefused("regions must be a GeoJSON FeatureCollection")
    regions = []
    for number, feature in enumerate(features, 1):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        properties = feature.get("properties") or {} if isinstance(feature, dict) else {}
        if (
            not isinstance(geometry, dict)
            or geometry.get("type") != "Polygon"
            or not isinstance(properties, dict)
        ):
            raise ExternalRefused(f"region {number}: a GeoJSON Polygon feature")
        rings = geometry.get("coordinates")
        if not isinstance(rings, list) or len(rings) != 1 or not isinstance(rings[0], list):
            raise ExternalRefused(f"region {number}: one outer ring, no holes")
        ring = rings[0]
        if not 4 <= len(ring) <= MAX_POINTS:
            raise ExternalRefused(f"region {number}: 4 to {MAX_POINTS} points (the first repeated last)")
        points = []
        for point in ring:
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
                or not (0 <= point[0] <= slide_width and 0 <= point[1] <= slide_height)
            ):
                raise ExternalRefused(
                    f"region {number}: points are [x, y] level-0 pixels within the slide's"
                    f" {slide_width} x {slide_height}"
                )
            points.append((float(point[0]), float(point[1])))
        score = properties.get("score", 0.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ExternalRefused(f"region {number}: score must be a number")
        regions.append(
            Region(_name(properties.get("label"), f"region {number}'s label"), tuple(points), float(score))
        )
    return regions
