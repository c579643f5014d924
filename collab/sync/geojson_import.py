"""QuPath GeoJSON in: a FeatureCollection, a list of features or one feature, read into the
annotations of the contract (docs/sync.md), in level-0 pixels of one slide.

What QuPath writes (its GeoJSON export, "Export objects as GeoJSON"): ``properties.objectType``
("annotation", "detection", "cell", "tile"), ``properties.name``, ``properties.classification``
(``{name, color: [r, g, b]}``, or ``colorRGB`` as a packed integer in older releases),
``properties.color`` and ``properties.measurements`` (an object of name -> number, or a list of
``{name, value}``). Annotations are imported; detections, cells and tiles (often thousands,
the output of an analysis, not a pathologist's marks) are left out and counted.

Geometry: Point, MultiPoint (a point each), LineString (two points: a ruler; more: an open
outline), Polygon (its outer ring; a polygon with holes is refused, saying so, since a shape of
ours has no holes), MultiPolygon (a shape per part, each checked the same way). Our own export's
``properties.collab.kind`` brings back rectangles and ellipses, so export -> import round-trips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_FEATURES = 5000
MAX_POINTS = 20_000  # per shape
MAX_LABEL = 500
IMPORTED = ("annotation",)
LEFT_OUT = ("detection", "cell", "tile", "tma_core")


class ImportRefused(ValueError):
    """The file cannot be imported as a whole; the message says why, for the person importing."""


@dataclass
class Imported:
    """Shapes ready for the document (without slide, author or times), and what was left out."""

    shapes: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def read_geojson(value: Any) -> Imported:
    """The annotations in ``value`` (parsed JSON); ImportRefused if it is no GeoJSON we read."""
    features = _features(value)
    if len(features) > MAX_FEATURES:
        raise ImportRefused(f"{len(features):,} features: at most {MAX_FEATURES:,} are imported at once.")
    result = Imported()
    skipped: dict[str, int] = {}
    for index, feature in enumerate(features, start=1):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise ImportRefused(f"Item {index} is not a GeoJSON Feature.")
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise ImportRefused(f"Feature {index}: properties must be an object.")
        kind = str(properties.get("objectType") or "annotation").lower()
        if kind not in IMPORTED:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        for shape in _shapes(feature.get("geometry"), properties, index):
            result.shapes.append({**shape, **_looks(properties)})
    for kind, count in sorted(skipped.items()):
        plural = "s" if count != 1 else ""
        result.left_out.append(f"{count} {kind}{plural} left out: only annotations are imported")
    return result


def _features(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value.get("type") == "FeatureCollection":
        features = value.get("features")
        if not isinstance(features, list):
            raise ImportRefused("The FeatureCollection has no list of features.")
        return features
    if isinstance(value, dict) and value.get("type") == "Feature":
        return [value]
    raise ImportRefused("Send a GeoJSON FeatureCollection, a list of Features or one Feature.")


def _point(raw: Any, where: str) -> list[float]:
    if not (isinstance(raw, list) and len(raw) >= 2):
        raise ImportRefused(f"{where}: a position must be [x, y].")
    x, y = raw[0], raw[1]
    if not all(isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in (x, y)):
        raise ImportRefused(f"{where}: coordinates must be finite numbers.")
    return [round(float(x), 1), round(float(y), 1)]


def _positions(raw: Any, where: str) -> list[list[float]]:
    if not isinstance(raw, list) or not raw:
        raise ImportRefused(f"{where}: expected a list of positions.")
    if len(raw) > MAX_POINTS:
        raise ImportRefused(f"{where}: {len(raw):,} points, at most {MAX_POINTS:,} per shape.")
    return [_point(p, where) for p in raw]


def _shapes(geometry: Any, properties: dict[str, Any], index: int) -> list[dict[str, Any]]:
    where = f"Feature {index}"
    if not isinstance(geometry, dict):
        raise ImportRefused(f"{where} has no geometry.")
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    mine = properties.get("collab")
    ours: dict[str, Any] = mine if isinstance(mine, dict) else {}
    if kind == "Point":
        return [
            {
                "kind": "text" if ours.get("kind") == "text" else "point",
                "points": [_point(coordinates, where)],
            }
        ]
    if kind == "MultiPoint":
        return [{"kind": "point", "points": [p]} for p in _positions(coordinates, where)]
    if kind == "LineString":
        points = _positions(coordinates, where)
        if len(points) < 2:
            raise ImportRefused(f"{where}: a line needs two points.")
        if len(points) == 2:
            return [{"kind": "line", "points": points}]
        return [{"kind": "freehand", "points": points, "closed": False}]
    if kind == "Polygon":
        return [_polygon(coordinates, where, ours.get("kind"))]
    if kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise ImportRefused(f"{where}: a MultiPolygon needs polygons.")
        return [_polygon(part, f"{where}, part {n}", None) for n, part in enumerate(coordinates, start=1)]
    raise ImportRefused(
        f"{where}: {kind!r} geometry is not imported (Point, LineString, Polygon and their Multi forms are)."
    )


def _polygon(rings: Any, where: str, our_kind: object) -> dict[str, Any]:
    if not isinstance(rings, list) or not rings:
        raise ImportRefused(f"{where}: a polygon needs a ring.")
    if len(rings) > 1:
        raise ImportRefused(
            f"{where}: a polygon with {len(rings) - 1} hole(s) is not imported: shapes here have no holes."
            " Remove the holes in QuPath (or split the object) and export again."
        )
    ring = _positions(rings[0], where)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring = ring[:-1]
    if len(ring) < 3:
        raise ImportRefused(f"{where}: a polygon needs three corners.")
    if our_kind in ("rect", "ellipse"):  # our own export: the shape's box comes back
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        return {"kind": our_kind, "points": [[min(xs), min(ys)], [max(xs), max(ys)]]}
    return {"kind": "freehand" if our_kind == "freehand" else "polygon", "points": ring}


def _looks(properties: dict[str, Any]) -> dict[str, Any]:
    """Label, colour and measurements: the object's name, else its classification's."""
    found = properties.get("classification")
    classification: dict[str, Any] = found if isinstance(found, dict) else {}
    mine = properties.get("collab")
    ours: dict[str, Any] = mine if isinstance(mine, dict) else {}
    label = properties.get("name") or classification.get("name") or ours.get("label") or ""
    colour = (
        _hex(properties.get("color"))
        or _hex(classification.get("color"))
        or _hex(classification.get("colorRGB"))
        or _hex(ours.get("color"))
        or "#e6194b"
    )
    looks: dict[str, Any] = {"label": str(label)[:MAX_LABEL], "color": colour}
    measurements = _measurements(properties.get("measurements"))
    if measurements:
        looks["measurements"] = measurements
    return looks


def _hex(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            int(value[1:], 16)
        except ValueError:
            return None
        return value.lower()
    if (
        isinstance(value, list)
        and len(value) >= 3
        and all(isinstance(c, int) and 0 <= c <= 255 for c in value[:3])
    ):
        return "#" + "".join(f"{c:02x}" for c in value[:3])
    if isinstance(value, int) and not isinstance(value, bool):  # QuPath's packed ARGB
        return "#" + f"{value & 0xFFFFFF:06x}"
    return None


def _measurements(raw: Any) -> dict[str, float]:
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [(m.get("name"), m.get("value")) for m in raw if isinstance(m, dict)]
    kept: dict[str, float] = {}
    for name, value in pairs[:200]:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(name, str) and number and math.isfinite(value):
            kept[name[:100]] = float(value)
    return kept
