"""One case's shared document and the people connected to it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pycrdt import (
    Array,
    Doc,
    Map,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    write_var_uint,
)
from pycrdt._sync import create_sync_step2_message

from collab.sync.path import PathSample, PresenterPath, presenting_view
from collab.sync.presence import (
    MAX_BYTES_PER_USER,
    MAX_IDS_PER_CONNECTION,
    MAX_IDS_PER_USER,
    MAX_NEW_IDS_PER_USER,
    TOO_MUCH_PRESENCE,
    Grants,
    Holding,
    neutralise,
    state_entry,
)
from collab.sync.protocol import (
    QUERY_AWARENESS,
    AwarenessEntry,
    Frame,
    encode_awareness,
    parse_awareness,
    parse_state_vector,
)

# The document's top-level names; anything else in an update is refused (docs/sync.md).
ROOTS = {"annotations": Map, "discussion": Array, "outcome": Map, "meta": Map}
# `outcome` and `meta` hold a few small shared settings (the viewer writes neither yet), and
# everyone downloads them on joining: each may hold this much as JSON, hundreds of times what
# they are for. Refused past it with 4413; checking costs no more than the bound itself.
MAX_ROOT_BYTES = 64 * 1024
TOO_LARGE = 4413

EMPTY_UPDATE = b"\x00\x00"


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

    def send(self, data: bytes) -> None: ...


class Room:
    """The document of one case, its peers and their awareness states."""

    # Top-level names an update may hold; of these, ``server_roots`` are written by the
    # server alone (``change``) and refused from any peer (4403).
    roots: Mapping[str, type] = ROOTS
    server_roots: frozenset[str] = frozenset()

    def __init__(
        self,
        case_id: str,
        updates: list[bytes],
        persist: Callable[[str, bytes], None],
        *,
        clients: dict[int, int] | None = None,
        persist_client: Callable[[str, int, int], None] | None = None,
        save_path: Callable[[PathSample], None] | None = None,
    ) -> None:
        self.case_id = case_id
        # Yjs client id -> the user whose connection announced it first (kept on disk).
        self.clients: dict[int, int] = dict(clients or {})
        self._persist_client = persist_client
        self.doc: Doc[Any] = Doc()
        for update in updates:
            self.doc.apply_update(update)
        self._persist = persist
        self.peers: set[Peer] = set()
        self.awareness: dict[int, AwarenessEntry] = {}
        self._owned: dict[Peer, set[int]] = {}  # awareness client ids by connection
        self._owner: dict[int, Peer] = {}  # and the other way round
        self._held: dict[int, Holding] = {}  # by user: the client ids and bytes they hold now
        self._new_ids: dict[int, int] = {}  # by user: client ids first seen from them here
        self.grants = Grants()  # who was handed the presenter's role
        # Where whoever presents looked, for the catch-up timeline (collab.sync.path).
        self.path = PresenterPath(case_id, save_path) if save_path else None
        # A twin of ``doc`` that updates are tried on first (``_check``), kept in step with it,
        # and what each try changed there. Copying the document for every update made each
        # update cost the whole document: five people drawing on a case with a few hundred
        # annotations left the server minutes behind (tests/test_resilience.py).
        self._trial: Doc[Any] | None = None
        self._watching: list[Any] = []
        self._touched: dict[str, set[Any]] = {}

    def join(self, peer: Peer) -> None:
        """Greet a newcomer: our state vector (so it sends what we lack) and who is here."""
        self.peers.add(peer)
        self._owned[peer] = set()
        peer.send(create_sync_message(self.doc))
        live = self._visible(peer)
        if live:
            peer.send(encode_awareness(live))

    def leave(self, peer: Peer) -> None:
        """Forget a peer; everyone else sees its pointers and presence go at once."""
        self.peers.discard(peer)
        gone = []
        held = self._held.get(peer.user_id)
        for client_id in self._owned.pop(peer, set()):
            del self._owner[client_id]
            entry = self.awareness.pop(client_id, None)
            if held is not None:
                held.ids -= 1
                held.bytes -= entry.size if entry else 0
            if entry is not None and entry.state_json != "null":
                gone.append(AwarenessEntry(client_id, entry.clock + 1, "null"))
        if held is not None and held.ids <= 0:
            del self._held[peer.user_id]
        if gone:
            self._relay(peer, encode_awareness(gone))

    def receive(self, peer: Peer, frame: Frame) -> None:
        """Handle one frame from ``peer``; raises Rejected for what it may not send."""
        if frame.kind == YMessageType.SYNC:
            if frame.sync_kind == YSyncMessageType.SYNC_STEP1:
                peer.send(create_sync_step2_message(self._missing(frame.payload)))
                return
            if frame.payload == EMPTY_UPDATE:
                return
            if not peer.contribute:
                raise Rejected(4403, "read-only: document changes are not accepted from this participant")
            self._check(peer, frame.payload)
            self.doc.apply_update(frame.payload)
            self._persist(self.case_id, frame.payload)
            self._broadcast(create_update_message(frame.payload), skip=peer)
        elif frame.kind == YMessageType.AWARENESS:
            self._awareness(peer, frame.payload)
        elif frame.kind == QUERY_AWARENESS:
            peer.send(encode_awareness(self._visible(peer)))

    def change(self, make: Callable[[Doc[Any]], None]) -> None:
        """Apply a change made by the server itself (``make(doc)``, one transaction): stored and
        sent to every peer like a participant's update. Only here may ``server_roots`` change."""
        updates: list[bytes] = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        try:
            with self.doc.transaction():
                make(self.doc)
        finally:
            self.doc.unobserve(subscription)
        for update in updates:
            if update == EMPTY_UPDATE:
                continue
            if self._trial is not None:
                self._trial.apply_update(update)
            self._persist(self.case_id, update)
            self._broadcast(create_update_message(update))

    def _visible(self, peer: Peer) -> list[AwarenessEntry]:
        """The awareness states ``peer`` is greeted with (everyone's, here)."""
        return [e for e in self.awareness.values() if e.state_json != "null"]

    def _relay(self, sender: Peer, data: bytes) -> None:
        """Pass on an awareness message of ``sender``'s client ids (to everyone, here)."""
        self._broadcast(data)

    def _missing(self, state_vector: bytes) -> bytes:
        try:
            return self.doc.get_update(state_vector)
        except Exception as exc:  # pycrdt raises its own errors on a malformed vector
            raise Rejected(4400, "malformed state vector") from exc

    def _awareness(self, peer: Peer, payload: bytes) -> None:
        """Keep what is new and pass it on, named as its sender and presenting only if they may
        (collab.sync.presence). y-websocket clients relay others' states too: those are dropped.

        A client id belongs for good to the person whose connection announced it first, so
        nobody moves, removes or takes over someone else's pointer, even once they have left;
        that person's newer state from another connection (a new tab, a reconnect) takes it over.
        """
        entries = parse_awareness(payload)
        accepted = []
        as_sent = True
        for sent in entries:
            current = self.awareness.get(sent.client_id)
            if (
                self.clients.get(sent.client_id, peer.user_id) != peer.user_id
                or (current is not None and sent.clock <= current.clock)
                or (current is None and sent.state is None)  # the removal of a state not here
            ):
                as_sent = False
                continue
            if self._owner.get(sent.client_id) is not peer:
                self._take(peer, sent.client_id)
            entry = self._checked(peer, sent)
            self._keep(peer, entry, current)
            accepted.append(entry)
            as_sent = as_sent and entry is sent
            # Only now, named and checked, may a view enter the presenter's path.
            presenting = entry.state is not None and entry.state.get("presenting") is True
            if self.path is not None and presenting and (view := presenting_view(entry.state_json)):
                self.path.observe(peer.user_id, view)
        # Everyone, the sender included, gets it: y-websocket clients count renewals.
        if accepted and as_sent:  # the usual case: the frame is passed on as it came
            self._relay(peer, bytes((YMessageType.AWARENESS,)) + write_var_uint(len(payload)) + payload)
        elif accepted:
            self._relay(peer, encode_awareness(accepted))

    def may_present(self, peer: Peer) -> bool:
        """Contributors, the meeting's chair, and whoever one of them handed the role to."""
        return peer.contribute or peer.chairs or peer.user_id in self.grants.users

    def _take(self, peer: Peer, client_id: int) -> None:
        """``peer`` announces ``client_id``: one more of its person's, or theirs from their older
        connection. Past the bounds of one connection's or one person's presence it is closed."""
        owned = self._owned.setdefault(peer, set())
        holder = self._owner.get(client_id)
        held = self._held.get(peer.user_id) or Holding()
        new = client_id not in self.clients
        if len(owned) >= MAX_IDS_PER_CONNECTION:
            raise _too_much(f"over {MAX_IDS_PER_CONNECTION} client ids on one connection")
        if holder is None and held.ids >= MAX_IDS_PER_USER:
            raise _too_much(f"over {MAX_IDS_PER_USER} client ids of one person")
        if new and self._new_ids.get(peer.user_id, 0) >= MAX_NEW_IDS_PER_USER:
            raise _too_much(f"over {MAX_NEW_IDS_PER_USER} new client ids of one person")
        if holder is not None:
            self._owned[holder].discard(client_id)
        else:
            held.ids += 1
            self._held[peer.user_id] = held
        if new:
            self._new_ids[peer.user_id] = self._new_ids.get(peer.user_id, 0) + 1
            self.clients[client_id] = peer.user_id
            if self._persist_client:
                self._persist_client(self.case_id, client_id, peer.user_id)
        owned.add(client_id)
        self._owner[client_id] = peer

    def _keep(self, peer: Peer, entry: AwarenessEntry, current: AwarenessEntry | None) -> None:
        """Keep ``entry`` as its client's state, within the bytes one person may hold."""
        held = self._held[peer.user_id]
        grown = held.bytes + entry.size - (current.size if current else 0)
        if grown > MAX_BYTES_PER_USER:
            raise _too_much(f"over {MAX_BYTES_PER_USER} bytes of state of one person")
        held.bytes = grown
        self.awareness[entry.client_id] = entry

    def _checked(self, peer: Peer, sent: AwarenessEntry) -> AwarenessEntry:
        """The state as others see it: its ``user`` is the sender's own, and presenting and its
        signals are off unless the sender may present (whose ``grant`` and ``takeBack`` count)."""
        state = sent.state
        if state is None:
            return sent
        changed = state.get("user") != peer.identity
        if changed:
            state["user"] = peer.identity
        if self.may_present(peer):
            taken_back = self.grants.note(sent.client_id, state, self._client_owner)
            if taken_back is not None:
                self._end_presenting(taken_back)
        elif neutralise(state):
            changed = True
        return state_entry(sent.client_id, sent.clock, state) if changed else sent

    def _client_owner(self, client_id: object) -> int | None:
        """The person a client id (as a state names it) belongs to, if any."""
        if isinstance(client_id, int) and not isinstance(client_id, bool):
            return self.clients.get(client_id)
        return None

    def _end_presenting(self, user_id: int) -> None:
        """Their role was taken back: ``user_id``'s states stop presenting now, whatever their
        client does (a newer clock, which their client adopts as its own state)."""
        for peer in [p for p in self.peers if p.user_id == user_id and not self.may_present(p)]:
            ended = []
            for client_id in self._owned.get(peer, ()):
                entry = self.awareness.get(client_id)
                if entry is not None and entry.state is not None and neutralise(state := dict(entry.state)):
                    ended.append(state_entry(client_id, entry.clock + 1, state))
                    self._held[user_id].bytes += ended[-1].size - entry.size
                    self.awareness[client_id] = ended[-1]
            if ended:
                self._relay(peer, encode_awareness(ended))

    def _twin(self) -> Doc[Any]:
        """The trial twin of the document, made when first needed (and again after a refusal)."""
        if self._trial is None:
            trial: Doc[Any] = Doc()
            trial.apply_update(self.doc.get_update())
            # The subscriptions are kept: pycrdt drops an observer whose subscription is gone.
            self._watching = [
                trial.get(root, type=kind).observe_deep(self._observer(root))
                for root, kind in self.roots.items()
            ]
            self._trial = trial
        return self._trial

    def _observer(self, root: str) -> Callable[[list[Any]], None]:
        """Notes what an update changed in the twin's ``root``: for a map, its top-level keys.
        (One argument: pycrdt passes a second, the transaction, to a callback that takes two.)"""

        def saw(events: list[Any]) -> None:
            keys = self._touched.setdefault(root, set())
            for event in events:
                keys.update(event.path[:1] if event.path else getattr(event, "keys", {}))

        return saw

    def _check(self, peer: Peer, update: bytes) -> None:
        """Apply the update to the twin first: refuse unknown roots and others' annotations or messages.
        A refused update has changed the twin, so it is dropped and made again when next needed."""
        try:
            self._check_on_twin(peer, update)
        except BaseException:
            self._trial = None
            self._watching = []
            raise

    def _check_on_twin(self, peer: Peer, update: bytes) -> None:
        trial = self._twin()
        self._touched = {}
        clocks = _clocks(trial)
        try:
            trial.apply_update(update)
        except Exception as exc:
            raise Rejected(4400, "malformed document update") from exc
        # The Yjs clients whose items this update added: their clocks moved in the twin.
        made = {client for client, clock in _clocks(trial).items() if clock > clocks.get(client, 0)}
        unknown = set(trial.keys()) - set(self.roots)
        if unknown:
            raise Rejected(4400, f"unknown document parts: {', '.join(sorted(unknown))}")
        for root in self.server_roots & self._touched.keys():
            if _plain(trial, root, self.roots[root]) != _plain(self.doc, root, self.roots[root]):
                raise Rejected(4403, f"{root} is written by the server only")
        # Whose work this update may carry: the sender's, and that of the people whose Yjs
        # clients made items in it. After a server crash a participant's client resends
        # what it had, including others' edits the server lost; a forgery made by the
        # sender's own client still names only the sender. (This read the clients from the
        # update's own state vector, which pycrdt gives only for items from a client's first
        # on: a replay of what followed stored work vouched for nobody, was refused with 4403,
        # and y-websocket gives up on 4403: every client was locked out after a crash.)
        vouched = {str(peer.user_id)} | {str(self.clients[c]) for c in made if c in self.clients}
        for root, what in (("annotations", "an annotation"), ("discussion", "a message")):
            if root not in self._touched:
                continue
            # Annotations: only the keys the update touched. Messages are known by id or
            # content, not by place, so the discussion is compared whole when it changed.
            only = self._touched[root] if root == "annotations" else None
            before, after = _authored(self.doc, root, only), _authored(trial, root, only)
            for key in before.keys() | after.keys():
                old, new = before.get(key), after.get(key)
                if old == new:
                    continue
                if old is None:
                    if new is not None and str(new.get("author")) not in vouched:
                        raise Rejected(4403, f"{what} must carry its author's own id")
                elif str(old.get("author")) not in vouched and not peer.moderate:
                    # Moderation: pathologists of the owning trust may correct or remove.
                    raise Rejected(
                        4403, "only the author or a pathologist of the owning trust may change that"
                    )
                elif new is not None and new.get("author") != old.get("author"):
                    raise Rejected(4403, f"{what}'s author cannot change")

    def _broadcast(self, data: bytes, skip: Peer | None = None) -> None:
        """Encoded once, queued for every peer (a slow peer's queue does not hold up others)."""
        for peer in list(self.peers):
            if peer is not skip:
                peer.send(data)


def _too_much(what: str) -> Rejected:
    return Rejected(TOO_MUCH_PRESENCE, f"too many presence entries: {what}")


def _plain(doc: Doc[Any], root: str, kind: type) -> Any:
    """A root's content as plain Python (None when absent)."""
    if root not in set(doc.keys()):
        return None
    return doc.get(root, type=kind).to_py()


def _py(value: Any) -> Any:
    """A value of a map as plain Python (shared types converted, plain values as they are)."""
    return value.to_py() if hasattr(value, "to_py") else value


def _clocks(doc: Doc[Any]) -> dict[int, int]:
    """The document's state vector: Yjs client id -> items seen from it."""
    try:
        return parse_state_vector(doc.get_state())
    except Exception:  # a client id past what browsers can read: it vouches for nobody
        return {}


def _authored(doc: Doc[Any], root: str, only: set[Any] | None = None) -> dict[str, Any]:
    """The entries of an authored root by key: annotations by their map key (those in ``only``,
    when given), messages by their id.

    A message without an id (another tool's) is keyed by its content, never by its position:
    concurrent posts reorder the array, and a position would pin one person's message on another.
    """
    if root not in set(doc.keys()):
        return {}
    if root == "annotations":
        annotations = doc.get(root, type=Map)
        keys = annotations.keys() if only is None else [k for k in only if k in annotations]
        entries = {k: _py(annotations[k]) for k in keys}
        return {k: (v if isinstance(v, dict) else {"value": v}) for k, v in entries.items()}
    messages = doc.get(root, type=Array).to_py() or []
    keyed: dict[str, Any] = {}
    for value in messages:
        entry = value if isinstance(value, dict) else {"value": value}
        key = str(entry["id"]) if entry.get("id") else "~" + json.dumps(entry, sort_keys=True, default=str)
        while key in keyed:  # the same words posted twice are two messages
            key += "'"
        keyed[key] = entry
    return keyed
