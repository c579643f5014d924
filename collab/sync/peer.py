"""A connection as a room sees it, and the refusal that closes it."""

from __future__ import annotations

from typing import Any, Protocol


class Rejected(Exception):
    """The connection sent something it may not; it is closed with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Peer(Protocol):
    """A connection as the room sees it."""

    user_id: int
    contribute: bool  # may change the document
    moderate: bool  # may change or delete other people's annotations
    chairs: bool  # chairs an open meeting with this case on its agenda: presents there
    identity: dict[str, Any]  # the ``user`` its awareness states carry (collab.sync.presence)

    @property
    def discuss(self) -> bool:
        """May change the discussion (their own messages), contributing or not."""
        ...

    def send(self, data: bytes) -> None: ...
