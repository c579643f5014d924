"""The interface every slide format is read through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: a command-line call need not load numpy
    import numpy as np
    from PIL import Image


class SlideError(Exception):
    """A slide file cannot be opened or read; the message is fit to show a user."""


@dataclass(frozen=True)
class Level:
    """One level of a slide's own pyramid."""

    width: int
    height: int
    downsample: float


@dataclass(frozen=True)
class SlideProperties:
    """What a slide says about itself."""

    vendor: str | None
    mpp_x: float | None
    mpp_y: float | None
    objective_power: float | None


class SlideReader(Protocol):
    """A thread-safe reader of one slide file."""

    levels: tuple[Level, ...]
    properties: SlideProperties
    associated_names: tuple[str, ...]
    # The native chunk (tile) size of level 0, used to pick the Deep Zoom tile size.
    l0_chunk_size: tuple[int, int]

    def read_region(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> np.ndarray:
        """RGB pixels (height, width, 3) of a level region; outside the slide is white."""
        ...

    def read_region_half(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> np.ndarray:
        """The same region at half resolution, (height / 2, width / 2, 3); all four numbers even."""
        ...

    def native_jpeg(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> bytes | None:
        """A complete JPEG of exactly that region when the file stores it as one, else None."""
        ...

    def verify(self) -> None:
        """Raise SlideError if a spot check finds the file damaged."""
        ...

    def associated_image(self, name: str) -> Image.Image:
        """A label, macro or thumbnail image stored in the file."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...
