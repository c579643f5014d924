"""The live channel of meeting rooms: who has a room open, and waking them when the meeting changes.

Each open room page is one ``Listener``. A change (a step to another case, an outcome, a
sign-off, someone arriving or leaving) replaces the meeting's latest state and wakes every
listener, which then sends that latest state. A page too slow to take every state skips to the
newest instead of queueing them, so memory stays bounded whatever a tab does.

With several server processes (``collab serve --redis-url``), each new state and each change of
who has the room open on a process goes to the others on the meeting's channel
(``collab.sync.bus``): a page open on any process shows every step and everyone in the room.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from collab.sync.bus import ASK, Bus

PREFIX = "meeting:"  # the meeting's channel on the bus: collab:room:meeting:<id>
STATE, HERE = b"s", b"h"


@dataclass(eq=False)
class Listener:
    """One open room page of one person."""

    user_id: int
    name: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class MeetingChannels:
    """Open room pages by meeting, the latest state of each meeting that has any, and one lock
    per meeting so that steps and the states built after them are applied in order."""

    def __init__(self, bus: Bus | None = None) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._seq = 0
        self._bus = bus
        # Who has the room open on each other process: meeting -> process -> people.
        self._elsewhere: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._subscribing: set[asyncio.Task[None]] = set()
        if bus is not None:
            bus.attach(PREFIX, self)

    def lock(self, meeting_id: str) -> asyncio.Lock:
        """Held while the meeting changes and its new state is built, so states go out in order."""
        return self._locks.setdefault(meeting_id, asyncio.Lock())

    def listening(self, meeting_id: str) -> bool:
        return bool(self._listeners.get(meeting_id))

    def join(self, meeting_id: str, user_id: int, name: str) -> Listener:
        listener = Listener(user_id, name)
        first = not self._listeners.get(meeting_id)
        self._listeners.setdefault(meeting_id, []).append(listener)
        if self._bus is not None:
            if first:
                self._in_background(self._open(meeting_id))
            else:
                self._tell_here(meeting_id)
        return listener

    async def _open(self, meeting_id: str) -> None:
        """Hear the meeting's channel, then ask who is in the room elsewhere and say who is here."""
        assert self._bus is not None
        await self._bus.subscribe(PREFIX + meeting_id)
        self._bus.publish(PREFIX + meeting_id, ASK, b"")
        self._tell_here(meeting_id)

    def leave(self, meeting_id: str, listener: Listener) -> None:
        """The page closed: the others are told who is still here."""
        listeners = self._listeners.get(meeting_id, [])
        if listener in listeners:
            listeners.remove(listener)
        if self._bus is not None:
            self._tell_here(meeting_id)
        if listeners:
            self._wake(meeting_id)
            return
        self._listeners.pop(meeting_id, None)
        self._latest.pop(meeting_id, None)
        self._elsewhere.pop(meeting_id, None)
        if self._bus is not None:
            self._in_background(self._bus.unsubscribe(PREFIX + meeting_id))
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
        if self._bus is not None:
            self._bus.publish(PREFIX + meeting_id, STATE, json.dumps(state).encode())
        if not self.listening(meeting_id):
            return
        self._latest[meeting_id] = state
        self._wake(meeting_id)

    def here(self, meeting_id: str) -> list[dict[str, Any]]:
        """The people with the room open now (once each, however many tabs), in order of arrival."""
        seen: dict[int, dict[str, Any]] = {}
        for listener in self._listeners.get(meeting_id, []):
            seen.setdefault(listener.user_id, {"id": listener.user_id, "name": listener.name})
        for people in self._elsewhere.get(meeting_id, {}).values():
            for person in people:
                seen.setdefault(person["id"], person)
        return list(seen.values())

    def message(self, meeting_id: str) -> dict[str, Any] | None:
        """What a page sends now: the latest state and who is here."""
        latest = self._latest.get(meeting_id)
        return None if latest is None else {**latest, "here": self.here(meeting_id)}

    def _wake(self, meeting_id: str) -> None:
        for listener in self._listeners.get(meeting_id, []):
            listener.woken.set()

    # ------------------------------------------------------------- other server processes

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._subscribing.add(task)
        task.add_done_callback(self._subscribing.discard)

    def _tell_here(self, meeting_id: str) -> None:
        """Tell the other processes who has the room open on this one."""
        assert self._bus is not None
        people = [
            {"id": listener.user_id, "name": listener.name}
            for listener in self._listeners.get(meeting_id, [])
        ]
        self._bus.publish(PREFIX + meeting_id, HERE, json.dumps(people).encode())

    def remote(self, meeting_id: str, origin: str, kind: bytes, body: bytes) -> None:
        if not self.listening(meeting_id):
            return
        if kind == STATE:
            state = json.loads(body)
            latest = self._latest.get(meeting_id)
            if latest is not None and latest.get("seq", 0) >= state.get("seq", 0):
                return  # a newer one was sent already
            self._seq = max(self._seq, int(state.get("seq", 0)))
            self._latest[meeting_id] = state
        elif kind == HERE:
            people = [{"id": int(p["id"]), "name": str(p["name"])} for p in json.loads(body)]
            elsewhere = self._elsewhere.setdefault(meeting_id, {})
            if people:
                elsewhere[origin] = people
            else:
                elsewhere.pop(origin, None)
        elif kind == ASK:
            self._tell_here(meeting_id)
            return
        self._wake(meeting_id)

    def gone(self, origin: str) -> None:
        """Another process stopped: its pages left the room."""
        for meeting_id, elsewhere in self._elsewhere.items():
            if elsewhere.pop(origin, None) is not None:
                self._wake(meeting_id)

    def resync(self) -> None:
        """Redis is back: ask again who is in each room elsewhere, and say who is here."""
        assert self._bus is not None
        for meeting_id in list(self._listeners):
            self._bus.publish(PREFIX + meeting_id, ASK, b"")
            self._tell_here(meeting_id)
