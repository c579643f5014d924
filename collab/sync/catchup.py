"""Answers to sync step 1 (what a client lacks): bounded per connection, shared between them.

A 4-byte step 1 with an empty state vector asks for the whole document. Encoding that for
every request let eight read-only sockets keep the server busy with a 5 MiB case (bench/
amplification.py). So the answer for a client that has none of the document (a newcomer,
and anyone whose vector names none of its writers) is encoded once per version of the
document and shared; and each connection may ask SYNC_REQUEST_BURST times at once, then once
per SYNC_REQUEST_EVERY_S, which bounds what it can pull to that many copies of the document.
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
# Past it the connection is closed: asking again is what a flood does, and a clear close says why.
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
        self._asked: WeakKeyDictionary[object, _Allowance] = WeakKeyDictionary()
        # Kept: pycrdt drops an observer whose subscription is gone.
        self._subscription = doc.observe(self._changed)

    def _changed(self, event: object) -> None:
        self._full = None

    def answer(self, asker: object, state_vector: bytes) -> bytes:
        """The sync step 2 message for ``asker``'s state vector. Raises TooManyRequests past its
        allowance, and whatever pycrdt raises for a malformed vector."""
        allowance = self._asked.get(asker)
        if allowance is None:
            allowance = self._asked[asker] = _Allowance()
        if not allowance.take():
            raise TooManyRequests(
                f"too many sync requests: {SYNC_REQUEST_BURST} at once, then one per "
                f"{SYNC_REQUEST_EVERY_S:g} s"
            )
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


class _Allowance:
    """A token bucket: SYNC_REQUEST_BURST tokens, one more every SYNC_REQUEST_EVERY_S."""

    def __init__(self) -> None:
        self.tokens = float(SYNC_REQUEST_BURST)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(SYNC_REQUEST_BURST, self.tokens + (now - self.at) / SYNC_REQUEST_EVERY_S)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
