"""The plug-in interface: what an analysis is handed (a SlideView) and what it must offer."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt

from collab.analysis.result import Result

# Called with the fraction done, 0..1, now and then; it may raise to cancel the analysis.
Progress = Callable[[float], None]


class SlideView(Protocol):
    """A readable slide pyramid; ``tiffslide.TiffSlide`` is one as it stands."""

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        ...

    @property
    def level_count(self) -> int: ...

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of each level, level 0 first."""
        ...

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per pixel of each level."""
        ...

    @property
    def properties(self) -> Mapping[str, Any]:
        """Slide metadata; "tiffslide.mpp-x" (or "openslide.mpp-x") gives µm per level-0 pixel."""
        ...

    def read_region(
        self,
        location: tuple[int, int],
        level: int,
        size: tuple[int, int],
        *,
        as_array: Literal[True],
        padding: bool = ...,
    ) -> npt.NDArray[Any]:
        """Pixels (height, width, 3 or 4) uint8 of a level; ``location`` is in level-0 pixels,
        ``size`` in pixels of ``level``."""
        ...


def open_slide_view(path: Path) -> SlideView:
    """Open a slide file for analysis (tiffslide reads SVS, NDPI, generic and OME TIFF)."""
    import tiffslide  # imported here: the interface itself needs no reader

    return tiffslide.TiffSlide(path)


def slide_mpp(slide: SlideView) -> float | None:
    """Micrometres per level-0 pixel, as the slide states it (None when it does not)."""
    properties = slide.properties
    for key in ("tiffslide.mpp-x", "openslide.mpp-x"):
        value = properties.get(key)
        if value is not None:
            try:
                mpp = float(value)
            except (TypeError, ValueError):
                continue
            if 0.01 < mpp < 100:  # 72-dpi "resolutions" (353 µm/px) are not a microscope's
                return mpp
    return None


def rgb(pixels: npt.NDArray[Any]) -> np.ndarray:
    """uint8 RGB of a read region (an alpha channel, if any, dropped)."""
    return np.asarray(pixels[..., :3], dtype=np.uint8)


class Analysis(ABC):
    """One kind of analysis. Subclasses are frozen dataclasses whose fields are its parameters,
    so that a Result records exactly what produced it."""

    name: ClassVar[str]
    # Bumped whenever a change could change a result, so stored results can be told apart.
    version: ClassVar[str]

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters this analysis runs with (JSON-compatible)."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} must be a dataclass to list its parameters")
        return dataclasses.asdict(self)

    @abstractmethod
    def run(self, slide: SlideView, progress: Progress) -> Result:
        """Analyse the slide; blocking, CPU-bound, safe to run in a worker process."""
