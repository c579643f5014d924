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
from typing import TYPE_CHECKING, Any

from collab.sync.protocol import AwarenessEntry

if TYPE_CHECKING:
    from collab.sync.room import Peer

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


class TooMuchPresence(Exception):
    """Past one of the bounds above: the connection is closed with TOO_MUCH_PRESENCE."""


@dataclass
class Holding:
    """What one person holds in a room: client ids and bytes of state."""

    ids: int = 0
    bytes: int = 0


class Holdings:
    """The client ids each connection and each person holds in one room, within the bounds
    above; ``awareness`` (client id -> state) and ``clients`` (client id -> the person who
    announced it first, for good) are the room's own, kept here as ids come and go."""

    def __init__(
        self,
        awareness: dict[int, AwarenessEntry],
        clients: dict[int, int],
        persist: Callable[[int, int], None] | None,
    ) -> None:
        self.awareness = awareness
        self.clients = clients
        self._persist = persist  # (client id, user id): a new owner, for ``doc_clients``
        self.owned: dict[Peer, set[int]] = {}  # client ids by connection
        self.owner: dict[int, Peer] = {}  # and the other way round
        self._held: dict[int, Holding] = {}  # by person: what they hold now
        self._new: dict[int, int] = {}  # by person: client ids first seen from them here

    def take(self, peer: Peer, client_id: int) -> None:
        """``peer`` announces ``client_id``: one more of its person's, or theirs from their older
        connection (a new tab, a reconnect)."""
        owned = self.owned.setdefault(peer, set())
        holder = self.owner.get(client_id)
        held = self._held.get(peer.user_id) or Holding()
        new = client_id not in self.clients
        if len(owned) >= MAX_IDS_PER_CONNECTION:
            raise TooMuchPresence(f"over {MAX_IDS_PER_CONNECTION} client ids on one connection")
        if holder is None and held.ids >= MAX_IDS_PER_USER:
            raise TooMuchPresence(f"over {MAX_IDS_PER_USER} client ids of one person")
        if new and self._new.get(peer.user_id, 0) >= MAX_NEW_IDS_PER_USER:
            raise TooMuchPresence(f"over {MAX_NEW_IDS_PER_USER} new client ids of one person")
        if holder is not None:
            self.owned[holder].discard(client_id)
        else:
            held.ids += 1
            self._held[peer.user_id] = held
        if new:
            self._new[peer.user_id] = self._new.get(peer.user_id, 0) + 1
            self.clients[client_id] = peer.user_id
            if self._persist:
                self._persist(client_id, peer.user_id)
        owned.add(client_id)
        self.owner[client_id] = peer

    def keep(self, peer: Peer, entry: AwarenessEntry, *, bounded: bool = True) -> None:
        """Keep ``entry`` (of a client id ``peer`` holds) as its client's state, within the bytes
        one person may hold (``bounded``; the server's own changes are not)."""
        current = self.awareness.get(entry.client_id)
        held = self._held[peer.user_id]
        grown = held.bytes + entry.size - (current.size if current else 0)
        if bounded and grown > MAX_BYTES_PER_USER:
            raise TooMuchPresence(f"over {MAX_BYTES_PER_USER} bytes of state of one person")
        held.bytes = grown
        self.awareness[entry.client_id] = entry

    def drop(self, peer: Peer) -> list[AwarenessEntry]:
        """Forget a connection's client ids and their states; the removals to tell everyone."""
        gone = []
        held = self._held.get(peer.user_id)
        for client_id in self.owned.pop(peer, set()):
            del self.owner[client_id]
            entry = self.awareness.pop(client_id, None)
            if held is not None:
                held.ids -= 1
                held.bytes -= entry.size if entry else 0
            if entry is not None and entry.state_json != "null":
                gone.append(AwarenessEntry(client_id, entry.clock + 1, "null"))
        if held is not None and held.ids <= 0:
            del self._held[peer.user_id]
        return gone

    def owner_of(self, client_id: object) -> int | None:
        """The person a client id (as a state names it, any JSON) belongs to, if any."""
        if isinstance(client_id, int) and not isinstance(client_id, bool):
            return self.clients.get(client_id)
        return None


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
