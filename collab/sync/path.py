"""The presenter's path through a case: where whoever presents looked, and when.

Late joiners and anyone re-opening a case after a meeting replay it as a timeline.
The path comes from awareness (the presenter's ``view``), so it costs the presenter
nothing extra. It is kept compact: at most one sample per ``every_s`` per person,
and the last position of a burst is always kept, so a replay ends where they stopped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# A view sample every half second is enough to replay a tour; a fast pan sends 20 a second.
SAMPLE_EVERY_S = 0.5
# Slide ids (and teaching aliases) are 16 hex digits; anything else a view names is no slide
# of ours, and must not reach the disk, the timeline or anyone's page.
MAX_SLIDE_ID = 64
SLIDE_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_SLIDE_ID}}}")
# Level-0 pixels (the largest slides are ~10^6 wide) and degrees: a view past this is no view.
MAX_VIEW_NUMBER = 1e9


@dataclass(frozen=True)
class PathSample:
    """Where one presenter looked: level-0 pixel centre, field width in level-0 pixels, degrees."""

    case_id: str
    at: str  # ISO 8601 UTC, milliseconds
    user_id: int
    slide: str
    x: float
    y: float
    width: float
    rotation: float

    def row(self) -> tuple[str, str, int, str, float, float, float, float]:
        return (self.case_id, self.at, self.user_id, self.slide, self.x, self.y, self.width, self.rotation)


def presenting_view(state: object) -> dict[str, object] | None:
    """The view in an awareness state (as parsed, once, by collab.sync.protocol) if its owner is
    presenting and the view is one the path can store, else None."""
    view = state.get("view") if isinstance(state, dict) and state.get("presenting") is True else None
    if not isinstance(view, dict) or not isinstance(view.get("slide"), str):
        return None
    if not SLIDE_ID.fullmatch(view["slide"]):
        return None
    numbers = [view.get(k, 0) for k in ("x", "y", "width", "rotation")]
    if not all(_view_number(n) for n in numbers):
        return None
    return view


def _view_number(n: object) -> bool:
    # Compared, never converted: an integer of 400 digits is no float, and NaN fails both tests.
    return isinstance(n, int | float) and not isinstance(n, bool) and -MAX_VIEW_NUMBER <= n <= MAX_VIEW_NUMBER


class PresenterPath:
    """Throttles one room's presenter views into samples handed to ``save``."""

    def __init__(
        self, case_id: str, save: Callable[[PathSample], None], every_s: float = SAMPLE_EVERY_S
    ) -> None:
        self.case_id = case_id
        self._save = save
        self._every_s = every_s
        self._last: dict[int, PathSample] = {}  # by user: the last sample saved
        self._held: dict[int, PathSample] = {}  # by user: a newer one, waiting for its turn
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def observe(self, user_id: int, view: dict[str, object]) -> None:
        sample = PathSample(
            self.case_id,
            datetime.now(UTC).isoformat(timespec="milliseconds"),
            user_id,
            str(view["slide"]),
            round(float(view.get("x", 0)), 1),  # type: ignore[arg-type]
            round(float(view.get("y", 0)), 1),  # type: ignore[arg-type]
            round(float(view.get("width", 0)), 1),  # type: ignore[arg-type]
            round(float(view.get("rotation", 0)), 1),  # type: ignore[arg-type]
        )
        last = self._last.get(user_id)
        if last is not None and _same_place(last, sample):
            self._held.pop(user_id, None)
            return
        if user_id in self._timers:  # within the window: keep only the newest
            self._held[user_id] = sample
            return
        self._emit(sample)

    def _emit(self, sample: PathSample) -> None:
        self._last[sample.user_id] = sample
        self._save(sample)
        self._timers[sample.user_id] = asyncio.get_running_loop().call_later(
            self._every_s, self._window_over, sample.user_id
        )

    def _window_over(self, user_id: int) -> None:
        del self._timers[user_id]
        held = self._held.pop(user_id, None)
        if held is not None:
            self._emit(held)

    def close(self) -> None:
        """Save what is held back (the room is emptying) and stop the timers."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for sample in self._held.values():
            self._save(sample)
        self._held.clear()


def _same_place(a: PathSample, b: PathSample) -> bool:
    return (a.slide, a.x, a.y, a.width, a.rotation) == (b.slide, b.x, b.y, b.width, b.rotation)
