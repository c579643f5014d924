"""Answers to sync step 1 (what a client lacks): bounded per connection, shared between them.

A 4-byte step 1 with an empty state vector asks for the whole document. Encoding that for
every request let eight read-only sockets keep the server busy with a 5 MiB case (bench/
amplification.py). So the answer for a client that has none of the document (a newcomer,
and anyone whose vector names none of its writers) is encoded once per version of the
document and shared; each connection may ask SYNC_REQUEST_BURST times at once, then once
per SYNC_REQUEST_EVERY_S; and since a new connection may always ask once, what one person's
connections pull together is bounded in bytes too (PULL_BURST_BYTES, then PULL_BYTES_PER_S).
"""

from __future__ import annotations

import time
from typing import Any
from weakref import WeakKeyDictionary

from pycrdt import Doc
from pycrdt._sync import create_sync_step2_message

from collab.sync.protocol import ProtocolError, parse_state_vector

# y-websocket asks once per connection (its periodic resync is off unless a page turns it on);
# a tool may ask again now and then. A burst of this many, then one per SYNC_REQUEST_EVERY_S:
# each answer can be the whole document, so a 4-byte request must not be free to repeat.
SYNC_REQUEST_BURST = 3
SYNC_REQUEST_EVERY_S = 10.0
# What one person's connections to one document may pull in answers: a flood that reconnects
# after each close pulled 4.6 GiB in 10 s from a 5 MiB case. Twelve fresh tabs of such a case at
# once fit in the burst; after it, one every five seconds. Answers to a client that reconnects
# hold only what it missed, and cost next to nothing of this.
PULL_BURST_BYTES = 64 << 20
PULL_BYTES_PER_S = 1 << 20
# Past either the connection is closed: asking again is what a flood does; a clear close says why.
TOO_MANY_REQUESTS = 4429


class TooManyRequests(Exception):
    """The connection asked for the document more often than it may."""


class CatchUp:
    """Sync step 2 answers for one document."""

    def __init__(self, doc: Doc[Any]) -> None:
        self._doc = doc
        # The answer to an empty state vector, and the Yjs clients the document holds items
        # of, for the document as it is now (None once it changed).
        self._full: tuple[bytes, frozenset[int] | None] | None = None
        self._asked: WeakKeyDictionary[object, _Bucket] = WeakKeyDictionary()
        self._pulled: dict[int, _Bucket] = {}  # by person: bytes
        # Kept: pycrdt drops an observer whose subscription is gone.
        self._subscription = doc.observe(self._changed)

    def _changed(self, event: object) -> None:
        self._full = None

    def answer(self, asker: object, person: int, state_vector: bytes) -> bytes:
        """The sync step 2 message for the state vector of ``asker`` (a connection of ``person``).
        Raises TooManyRequests past their allowances, and whatever pycrdt raises for a malformed
        vector."""
        requests = self._asked.get(asker)
        if requests is None:
            requests = self._asked[asker] = _Bucket(SYNC_REQUEST_BURST, 1 / SYNC_REQUEST_EVERY_S)
        if not requests.take(1):
            raise TooManyRequests(
                f"too many sync requests: {SYNC_REQUEST_BURST} at once, then one per "
                f"{SYNC_REQUEST_EVERY_S:g} s"
            )
        pulled = self._pulled.get(person)
        if pulled is None:
            pulled = self._pulled[person] = _Bucket(PULL_BURST_BYTES, PULL_BYTES_PER_S)
        if not pulled.take(0):
            raise TooManyRequests(
                f"too many sync requests: this document was sent {PULL_BURST_BYTES >> 20} MiB to "
                f"your connections at once, then {PULL_BYTES_PER_S >> 20} MiB a second"
            )
        answer = self._answer(state_vector)
        pulled.charge(len(answer))  # it may overdraw once: a document over the burst still goes out
        return answer

    def _answer(self, state_vector: bytes) -> bytes:
        full, writers = self._whole()
        clocks = _clocks(state_vector)
        if clocks is not None:
            known = clocks.values() if writers is None else [clocks.get(client) for client in writers]
            if not any(known):
                return full  # the client has none of it: everything, as for everyone else
        return create_sync_step2_message(self._doc.get_update(state_vector))

    def _whole(self) -> tuple[bytes, frozenset[int] | None]:
        if self._full is None:
            clocks = _clocks(self._doc.get_state())
            writers = None if clocks is None else frozenset(clocks)
            self._full = (create_sync_step2_message(self._doc.get_update()), writers)
        return self._full


def _clocks(state_vector: bytes) -> dict[int, int] | None:
    """A state vector as read strictly; None for one pycrdt may read otherwise (it decides)."""
    try:
        return parse_state_vector(state_vector)
    except ProtocolError:
        return None


class _Bucket:
    """A token bucket: ``capacity`` tokens, ``per_s`` more each second."""

    def __init__(self, capacity: float, per_s: float) -> None:
        self.capacity = capacity
        self.per_s = per_s
        self.tokens = float(capacity)
        self.at = time.monotonic()

    def take(self, cost: float) -> bool:
        """Take ``cost`` tokens if there are more than that (False, and nothing taken, if not)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens < max(cost, 1):
            return False
        self.tokens -= cost
        return True

    def charge(self, cost: float) -> None:
        """Take ``cost`` tokens, into debt if need be."""
        self.tokens -= cost
