"""The live room of a teaching session: a case room whose students read, and whose awareness
fans out so that a class of a hundred costs little.

Who may write: the educator (a moderator: any annotation) and the one student holding the pen
(their own annotations); everyone else is read-only (4403). ``session`` and ``quiz`` are
written by the server alone (``Room.change``).

Awareness: what the educator or the pen holder sends goes to everyone; what any other student
sends goes only to the writers (the educator) and back to the student. Students therefore never
learn each other's names, and a class of N costs O(N) frames per educator move, not O(N²).
As in a case room, every state is named as its sender (a student by their peer id and the name
they joined with, ``Connection.identity``), so nobody can pose as the educator whose view
everyone follows, and only writers present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pycrdt import Map

from collab.sync.protocol import AwarenessEntry
from collab.sync.room import Peer, Room

TEACHING_ROOTS: Mapping[str, type] = {"annotations": Map, "session": Map, "quiz": Map}


class TeachingRoom(Room):
    """One teaching session's document, its educator and students."""

    roots = TEACHING_ROOTS
    server_roots = frozenset({"session", "quiz"})

    def __init__(
        self, session_id: str, updates: list[bytes], persist: Callable[[str, bytes], None], **options: Any
    ) -> None:
        # Presenter paths and similar per-case records do not apply to teaching sessions.
        options.pop("save_path", None)
        super().__init__(session_id, updates, persist, **options)

    def _loud(self, peer: Peer) -> bool:
        """Whether ``peer``'s awareness reaches everyone: writers (educator, pen holder) only."""
        return peer.contribute

    def _visible(self, peer: Peer) -> list[AwarenessEntry]:
        if peer.moderate:
            return super()._visible(peer)
        owned = self.holdings.owned
        loud = {client_id for other in self.peers if self._loud(other) for client_id in owned.get(other, ())}
        loud |= self.remote_loud
        return [e for e in super()._visible(peer) if e.client_id in loud]

    def _relay(self, sender: Peer, data: bytes) -> None:
        if self._loud(sender):
            self._broadcast(data)
            return
        for peer in list(self.peers):
            if peer is sender or peer.moderate:
                peer.send(data)

    def _relay_remote(self, data: bytes, loud: bool) -> None:
        if loud:
            self._broadcast(data)
            return
        for peer in list(self.peers):
            if peer.moderate:
                peer.send(data)
