"""The case's annotations as GeoJSON, in level-0 pixel coordinates (the form QuPath imports)."""

from __future__ import annotations

import math
from typing import Any

from pycrdt import Doc, Map

# Ellipses become polygons with this many vertices: GeoJSON has no ellipse.
ELLIPSE_VERTICES = 64


def annotations_geojson(doc: Doc[Any], slide: str | None = None) -> dict[str, Any]:
    """A FeatureCollection of the annotations (of one slide, if given), oldest first."""
    if "annotations" not in set(doc.keys()):
        return {"type": "FeatureCollection", "features": []}
    annotations = doc.get("annotations", type=Map).to_py() or {}
    features = []
    for annotation_id, value in annotations.items():
        if not isinstance(value, dict) or (slide and value.get("slide") != slide):
            continue
        geometry = _geometry(str(value.get("kind")), value.get("points") or [])
        if geometry is None:
            continue
        features.append(
            (str(value.get("created") or ""), annotation_id, _feature(annotation_id, value, geometry))
        )
    features.sort(key=lambda f: (f[0], f[1]))
    return {"type": "FeatureCollection", "features": [f for _, _, f in features]}


def _feature(annotation_id: str, value: dict[str, Any], geometry: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "objectType": "annotation",  # QuPath: an annotation, not a detection
        "name": value.get("label") or "",
        "collab": {
            key: value.get(key) for key in ("slide", "kind", "label", "color", "author", "created", "updated")
        },
    }
    rgb = _rgb(value.get("color"))
    if rgb:
        properties["color"] = rgb  # QuPath reads [r, g, b]
    return {"type": "Feature", "id": annotation_id, "geometry": geometry, "properties": properties}


def _geometry(kind: str, raw: list[Any]) -> dict[str, Any] | None:
    try:
        points = [[float(p[0]), float(p[1])] for p in raw]
    except (TypeError, ValueError, IndexError):
        return None
    if not points or not all(math.isfinite(c) for p in points for c in p):
        return None
    if kind in ("point", "text"):
        return {"type": "Point", "coordinates": points[0]}
    if kind == "line" and len(points) >= 2:
        return {"type": "LineString", "coordinates": points[:2]}
    if kind == "rect" and len(points) >= 2:
        (x0, y0), (x1, y1) = points[:2]
        return _polygon([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if kind == "ellipse" and len(points) >= 2:
        (x0, y0), (x1, y1) = points[:2]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        steps = [2 * math.pi * i / ELLIPSE_VERTICES for i in range(ELLIPSE_VERTICES)]
        return _polygon([[cx + rx * math.cos(t), cy + ry * math.sin(t)] for t in steps])
    if kind in ("polygon", "freehand") and len(points) >= 3:
        return _polygon(points)
    return None


def _polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def _rgb(colour: object) -> list[int] | None:
    if isinstance(colour, str) and len(colour) == 7 and colour.startswith("#"):
        try:
            return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        except ValueError:
            return None
    return None
