"""What every analysis returns: scores, flags, heatmaps and regions, all in level-0 pixels.

Each type turns into a JSON-compatible dict (``to_json``) and back (``from_json``), so a result
can be stored and sent to a browser as it is. Heatmap values travel as base64 float32, so a
round trip gives back exactly the same numbers.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Flag:
    """Something a person should act on, e.g. "rescan suggested", and why."""

    name: str
    reason: str

    def to_json(self) -> JsonObject:
        """A JSON-compatible dict."""
        return {"name": self.name, "reason": self.reason}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Flag:
        """The flag ``to_json`` gave."""
        return cls(name=str(obj["name"]), reason=str(obj["reason"]))


@dataclass(frozen=True, eq=False)
class Heatmap:
    """A value in 0..1 per cell of a square grid laid over level 0.

    Cell (row r, column c) covers level-0 x in [c * l0_cell_px, (c + 1) * l0_cell_px) and y in
    [r * l0_cell_px, (r + 1) * l0_cell_px); the last row and column may reach past the slide.
    """

    name: str
    level0_cell_px: int
    values: np.ndarray  # float32, (rows, cols), 0..1
    legend: str

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 2:
            raise ValueError(f"heatmap values must be 2-D, not {values.shape}")
        if values.size and not (np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0):
            raise ValueError(f"heatmap {self.name!r} has values outside 0..1")
        if self.level0_cell_px <= 0:
            raise ValueError("level0_cell_px must be positive")
        values.flags.writeable = False  # frozen means frozen, numbers included
        object.__setattr__(self, "values", values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Heatmap):
            return NotImplemented
        return (
            (self.name, self.level0_cell_px, self.legend) == (other.name, other.level0_cell_px, other.legend)
            and self.values.shape == other.values.shape
            and bool(np.array_equal(self.values, other.values))
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and values are an array

    def to_json(self) -> JsonObject:
        """A JSON-compatible dict; the values as little-endian float32, base64."""
        rows, cols = self.values.shape
        data = np.ascontiguousarray(self.values, dtype="<f4").tobytes()
        return {
            "name": self.name,
            "level0_cell_px": self.level0_cell_px,
            "rows": rows,
            "cols": cols,
            "values_f32_base64": base64.b64encode(data).decode("ascii"),
            "legend": self.legend,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Heatmap:
        """The heatmap ``to_json`` gave, values bit for bit."""
        shape = (int(obj["rows"]), int(obj["cols"]))
        data = base64.b64decode(obj["values_f32_base64"], validate=True)
        values = np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)
        return cls(str(obj["name"]), int(obj["level0_cell_px"]), values, str(obj["legend"]))


@dataclass(frozen=True)
class Region:
    """An area worth looking at: a closed polygon in level-0 pixels (x, y), with a score."""

    label: str
    polygon_level0: tuple[tuple[float, float], ...]
    score: float

    def to_json(self) -> JsonObject:
        """A JSON-compatible dict; the polygon as [[x, y], ...]."""
        return {
            "label": self.label,
            "polygon_level0": [[x, y] for x, y in self.polygon_level0],
            "score": self.score,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Region:
        """The region ``to_json`` gave."""
        polygon = tuple((float(x), float(y)) for x, y in obj["polygon_level0"])
        return cls(str(obj["label"]), polygon, float(obj["score"]))


@dataclass(frozen=True)
class Result:
    """One analysis of one slide: which analysis (and version, with what parameters) said what."""

    analysis: str
    version: str
    parameters: Mapping[str, Any]  # JSON-compatible values only
    scores: Mapping[str, float] = field(default_factory=dict)
    flags: tuple[Flag, ...] = ()
    heatmaps: tuple[Heatmap, ...] = ()
    regions: tuple[Region, ...] = ()

    def flag(self, name: str) -> Flag | None:
        """The flag of that name, if raised."""
        return next((f for f in self.flags if f.name == name), None)

    def heatmap(self, name: str) -> Heatmap:
        """The heatmap of that name; KeyError if there is none."""
        for heatmap in self.heatmaps:
            if heatmap.name == name:
                return heatmap
        raise KeyError(name)

    def to_json(self) -> JsonObject:
        """A JSON-compatible dict, to store or send as it is."""
        return {
            "analysis": self.analysis,
            "version": self.version,
            "parameters": dict(self.parameters),
            "scores": {k: float(v) for k, v in self.scores.items()},
            "flags": [f.to_json() for f in self.flags],
            "heatmaps": [h.to_json() for h in self.heatmaps],
            "regions": [r.to_json() for r in self.regions],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Result:
        """The result ``to_json`` gave."""
        return cls(
            analysis=str(obj["analysis"]),
            version=str(obj["version"]),
            parameters=dict(obj["parameters"]),
            scores={str(k): float(v) for k, v in obj["scores"].items()},
            flags=tuple(Flag.from_json(f) for f in obj["flags"]),
            heatmaps=tuple(Heatmap.from_json(h) for h in obj["heatmaps"]),
            regions=tuple(Region.from_json(r) for r in obj["regions"]),
        )
