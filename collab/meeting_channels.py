"""The live channel of meeting rooms: who has a room open, and waking them when the meeting changes.

Each open room page is one ``Listener``. A change (a step to another case, an outcome, a
sign-off, someone arriving or leaving) replaces the meeting's latest state and wakes every
listener, which then sends that latest state. A page too slow to take every state skips to the
newest instead of queueing them, so memory stays bounded whatever a tab does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Listener:
    """One open room page of one person."""

    user_id: int
    name: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class MeetingChannels:
    """Open room pages by meeting, the latest state of each meeting that has any, and one lock
    per meeting so that steps and the states built after them are applied in order."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._seq = 0

    def lock(self, meeting_id: str) -> asyncio.Lock:
        """Held while the meeting changes and its new state is built, so states go out in order."""
        return self._locks.setdefault(meeting_id, asyncio.Lock())

    def listening(self, meeting_id: str) -> bool:
        return bool(self._listeners.get(meeting_id))

    def join(self, meeting_id: str, user_id: int, name: str) -> Listener:
        listener = Listener(user_id, name)
        self._listeners.setdefault(meeting_id, []).append(listener)
        return listener

    def leave(self, meeting_id: str, listener: Listener) -> None:
        """The page closed: the others are told who is still here."""
        listeners = self._listeners.get(meeting_id, [])
        if listener in listeners:
            listeners.remove(listener)
        if listeners:
            self._wake(meeting_id)
            return
        self._listeners.pop(meeting_id, None)
        self._latest.pop(meeting_id, None)
        lock = self._locks.get(meeting_id)
        if lock is not None and not lock.locked():
            del self._locks[meeting_id]

    def publish(self, meeting_id: str, state: dict[str, Any]) -> None:
        """A new state of the meeting: every open page of it sends it.

        Each state gets ``seq``, larger than any before (also after a restart: it is the time
        in ns), so a page that receives a step's answer and the pushed state in either order
        keeps the newer one."""
        self._seq = max(self._seq + 1, time.time_ns())
        state["seq"] = self._seq
        if not self.listening(meeting_id):
            return
        self._latest[meeting_id] = state
        self._wake(meeting_id)

    def here(self, meeting_id: str) -> list[dict[str, Any]]:
        """The people with the room open now (once each, however many tabs), in order of arrival."""
        seen: dict[int, dict[str, Any]] = {}
        for listener in self._listeners.get(meeting_id, []):
            seen.setdefault(listener.user_id, {"id": listener.user_id, "name": listener.name})
        return list(seen.values())

    def message(self, meeting_id: str) -> dict[str, Any] | None:
        """What a page sends now: the latest state and who is here."""
        latest = self._latest.get(meeting_id)
        return None if latest is None else {**latest, "here": self.here(meeting_id)}

    def _wake(self, meeting_id: str) -> None:
        for listener in self._listeners.get(meeting_id, []):
            listener.woken.set()
