"""Awareness rules of a room: who a state says its sender is, who may present, and how much
presence one person may hold (docs/sync.md, "Awareness state of the viewer").

The server names every sender itself: a state's ``user`` is the connection's, whatever was
sent. ``presenting`` and the signals that move other people's views (``summon``, ``grant``,
``takeBack``) count only from those who may present: contributors, the chair of an open
meeting with the case on its agenda, and people handed the role by one of them. From anyone
else they are neutralised before anyone sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collab.sync.protocol import AwarenessEntry

# A viewer's tab announces one Yjs client id, and its state is some 300-500 bytes (``user``,
# ``view``, ``pointer`` and a few signals). The limits leave room for that many times over;
# past any of them the connection is closed with TOO_MUCH_PRESENCE, saying which.
# Client ids one connection may announce: a tab uses one.
MAX_IDS_PER_CONNECTION = 4
# Client ids one person may hold in a room at once: their open tabs and devices.
MAX_IDS_PER_USER = 16
# Bytes of state one person may keep in a room at once: their share of a newcomer's greeting,
# which is therefore at most (people in the room) x this.
MAX_BYTES_PER_USER = 64 * 1024
# Client ids one person may bring to a room while it stays loaded. Each is kept for good in
# ``doc_clients`` (to vouch for their work after a crash), and each page load makes a new one.
MAX_NEW_IDS_PER_USER = 256
TOO_MUCH_PRESENCE = 4429

# What moves other people's views or hands the role on; null from those who may not present.
SIGNALS = ("summon", "grant", "takeBack")

# The viewer's palette (static/src/presence.js), so that the name the server sets keeps the
# colour the viewer gives it.
COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#f032e6", "#9a6324")


def colour_for(user_id: int) -> str:
    """A person's colour, as the viewer picks it."""
    return COLOURS[abs(user_id) % len(COLOURS)]


def presence_user(user_id: int, name: str, role: str, organisation: str | None) -> dict[str, Any]:
    """The ``user`` that every awareness state of this person carries (as their viewer sends it)."""
    return {
        "id": user_id,
        "name": name,
        "role": role,
        "organisation": organisation,
        "colour": colour_for(user_id),
    }


def neutralise(state: dict[str, Any]) -> bool:
    """Turn off presenting and its signals in ``state``; whether anything was on."""
    changed = False
    if state.get("presenting") not in (None, False):
        state["presenting"] = False
        changed = True
    for key in SIGNALS:
        if state.get(key) is not None:
            state[key] = None
            changed = True
    return changed


def state_entry(client_id: int, clock: int, state: dict[str, Any]) -> AwarenessEntry:
    """The entry of a state the server changed, encoded once for everyone."""
    text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    return AwarenessEntry(client_id, clock, text, state, len(text.encode()))


@dataclass
class Holding:
    """What one person holds in a room: client ids and bytes of state."""

    ids: int = 0
    bytes: int = 0


class Grants:
    """People handed the presenter's role in one room, by user id: from a ``grant`` of someone
    who may present until a ``takeBack`` naming them, or until the room empties.

    A viewer keeps its last ``grant`` and ``takeBack`` in every later state, so each is acted
    on once per sender and ``at``, as the viewers themselves do.
    """

    def __init__(self) -> None:
        self.users: set[int] = set()
        self._seen: dict[tuple[int, str], object] = {}

    def note(
        self, client_id: int, state: dict[str, Any], owner_of: Callable[[object], int | None]
    ) -> int | None:
        """Act on the signals of a state that may carry them; the user whose role was taken back."""
        grant, taken = state.get("grant"), state.get("takeBack")
        if isinstance(grant, dict) and self._new(client_id, "grant", grant.get("at")):
            user_id = owner_of(grant.get("to"))
            if user_id is not None:
                self.users.add(user_id)
        if isinstance(taken, dict) and self._new(client_id, "takeBack", taken.get("at")):
            user_id = owner_of(taken.get("from"))
            if user_id is not None and user_id in self.users:
                self.users.discard(user_id)
                return user_id
        return None

    def _new(self, client_id: int, signal: str, at: object) -> bool:
        key = (client_id, signal)
        if key in self._seen and self._seen[key] == at:
            return False
        self._seen[key] = at
        return True
