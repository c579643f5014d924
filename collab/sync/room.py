"""One case's shared document and the people connected to it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

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

from collab.sync.bus import AWARENESS, UPDATE, awareness_body, parse_awareness_body
from collab.sync.catchup import TOO_MANY_REQUESTS, CatchUp, TooManyRequests
from collab.sync.discussion import DISCUSSION, Messages
from collab.sync.guard import Guard
from collab.sync.nesting import Nesting, Placed
from collab.sync.path import PathSample, PresenterPath, presenting_view
from collab.sync.peer import Peer, Rejected
from collab.sync.presence import TOO_MUCH_PRESENCE, Grants, Holdings, TooMuchPresence, neutralise, state_entry
from collab.sync.protocol import (
    QUERY_AWARENESS,
    AwarenessEntry,
    Frame,
    awareness_payload,
    encode_awareness,
    parse_awareness,
)
from collab.sync.yupdate import MalformedUpdate

# The document's top-level names; anything else in an update is refused (docs/sync.md).
ROOTS = {"annotations": Map, "discussion": Array, "outcome": Map, "meta": Map}
# `outcome` and `meta` hold a few small shared settings (the viewer writes neither yet), and
# everyone downloads them on joining: each may hold this much as JSON, hundreds of times what
# they are for. Refused past it with 4413; checking costs no more than the bound itself.
MAX_ROOT_BYTES = 64 * 1024
BOUNDED_ROOTS = {"outcome": MAX_ROOT_BYTES, "meta": MAX_ROOT_BYTES}

EMPTY_UPDATE = b"\x00\x00"


class Room:
    """The document of one case, its peers and their awareness states."""

    # Top-level names an update may hold; of these, ``server_roots`` are written by the
    # server alone (``change``) and refused from any peer (4403).
    roots: Mapping[str, type] = ROOTS
    server_roots: frozenset[str] = frozenset()
    # Roots whose size as JSON is bounded (refused past it with 4413).
    bounded_roots: Mapping[str, int] = BOUNDED_ROOTS

    def __init__(
        self,
        case_id: str,
        updates: list[bytes],
        persist: Callable[[str, bytes], None],
        *,
        clients: dict[int, int] | None = None,
        persist_client: Callable[[str, int, int], None] | None = None,
        save_path: Callable[[PathSample], None] | None = None,
        publish: Callable[[bytes, bytes], None] | None = None,
    ) -> None:
        self.case_id = case_id
        # To the other server processes with this room open (collab.sync.bus), if there are any.
        self._publish = publish
        # Yjs client id -> the user whose connection announced it first (kept on disk).
        self.clients: dict[int, int] = dict(clients or {})
        self.doc: Doc[Any] = Doc()
        # Both follow the document from its first update on: answers to sync step 1, and the
        # discussion's messages in order (collab.sync.catchup, collab.sync.discussion).
        self._catchup = CatchUp(self.doc)
        self._messages = Messages(self.doc) if DISCUSSION in self.roots else None
        for update in updates:
            self.doc.apply_update(update)
        # How deep each item sits in shared types, for updates that would nest them deeper.
        self._nesting = Nesting(self.doc.get_update())
        self._persist = persist
        self.peers: set[Peer] = set()
        self.awareness: dict[int, AwarenessEntry] = {}
        # Whose awareness client ids these are, within the bounds of presence.
        owners = functools.partial(persist_client, case_id) if persist_client else None
        self.holdings = Holdings(self.awareness, self.clients, owners)
        self.grants = Grants()  # who was handed the presenter's role
        # Where whoever presents looked, for the catch-up timeline (collab.sync.path).
        self.path = PresenterPath(case_id, save_path) if save_path else None
        # Who may change what: each update is tried on a twin of ``doc`` first.
        self._guard = Guard(self.doc, self._messages, self.roots, self.server_roots, self.bounded_roots)
        # Awareness client ids held by peers of other server processes: whose process, and
        # which of them everyone may see (collab.sync.teaching).
        self.remote_owner: dict[int, str] = {}
        self.remote_loud: set[int] = set()

    def join(self, peer: Peer) -> None:
        """Greet a newcomer: our state vector (so it sends what we lack) and who is here."""
        self.peers.add(peer)
        self.holdings.owned[peer] = set()
        peer.send(create_sync_message(self.doc))
        live = self._visible(peer)
        if live:
            peer.send(encode_awareness(live))

    def leave(self, peer: Peer) -> None:
        """Forget a peer; everyone else sees its pointers and presence go at once."""
        self.peers.discard(peer)
        gone = self.holdings.drop(peer)
        if gone:
            self._relay(peer, encode_awareness(gone))
            self._share_awareness(peer, gone)

    def receive(self, peer: Peer, frame: Frame) -> None:
        """Handle one frame from ``peer``; raises Rejected for what it may not send."""
        if frame.kind == YMessageType.SYNC:
            if frame.sync_kind == YSyncMessageType.SYNC_STEP1:
                peer.send(self._missing(peer, frame.payload))
                return
            if frame.payload == EMPTY_UPDATE:
                return
            if not peer.contribute and not peer.discuss:
                raise Rejected(4403, "read-only: document changes are not accepted from this participant")
            placed = self._shape(frame.payload)
            self._guard.check(peer, frame.payload, self.clients)
            self.doc.apply_update(frame.payload)
            self._nesting.record(placed)
            self._persist(self.case_id, frame.payload)
            self._broadcast(create_update_message(frame.payload), skip=peer)
            self._share(UPDATE, frame.payload)
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
            self._guard.follow(update)
            self._nesting.note(update)
            self._persist(self.case_id, update)
            self._broadcast(create_update_message(update))
            self._share(UPDATE, update)

    def _shape(self, update: bytes) -> Placed:
        """Read the update before any yrs call (collab.sync.yupdate): values or shared types nested
        too deep, values too large and parts no document of ours holds raise UpdateRefused, a
        ProtocolError (closed with 1007); bytes that are no update at all are refused with 4400."""
        try:
            return self._nesting.check(update)
        except MalformedUpdate as exc:
            raise Rejected(4400, f"malformed document update: {exc}") from exc

    def _visible(self, peer: Peer) -> list[AwarenessEntry]:
        """The awareness states ``peer`` is greeted with (everyone's, here)."""
        return [e for e in self.awareness.values() if e.state_json != "null"]

    def _relay(self, sender: Peer, data: bytes) -> None:
        """Pass on an awareness message of ``sender``'s client ids (to everyone, here)."""
        self._broadcast(data)

    def _missing(self, peer: Peer, state_vector: bytes) -> bytes:
        """The sync step 2 answering ``peer``'s state vector, within what it may ask for."""
        try:
            return self._catchup.answer(peer, peer.user_id, state_vector)
        except TooManyRequests as exc:
            raise Rejected(TOO_MANY_REQUESTS, str(exc)) from exc
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
            try:
                if self.holdings.owner.get(sent.client_id) is not peer:
                    self.holdings.take(peer, sent.client_id)
                entry = self._checked(peer, sent)
                self.holdings.keep(peer, entry)
            except TooMuchPresence as exc:
                raise Rejected(TOO_MUCH_PRESENCE, f"too many presence entries: {exc}") from exc
            accepted.append(entry)
            as_sent = as_sent and entry is sent
            # Only now, named and checked, may a view enter the presenter's path.
            if self.path is not None and (view := presenting_view(entry.state)):
                self.path.observe(peer.user_id, view)
        # Everyone, the sender included, gets it: y-websocket clients count renewals.
        if accepted and as_sent:  # the usual case: the frame is passed on as it came
            self._relay(peer, bytes((YMessageType.AWARENESS,)) + write_var_uint(len(payload)) + payload)
        elif accepted:
            self._relay(peer, encode_awareness(accepted))
        if accepted:
            self._share_awareness(peer, accepted)

    def may_present(self, peer: Peer) -> bool:
        """Contributors, the meeting's chair, and whoever one of them handed the role to."""
        return peer.contribute or peer.chairs or peer.user_id in self.grants.users

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
            taken_back = self.grants.note(sent.client_id, state, self.holdings.owner_of)
            if taken_back is not None:
                self._end_presenting(taken_back)
        elif neutralise(state):
            changed = True
        return state_entry(sent.client_id, sent.clock, state) if changed else sent

    def _end_presenting(self, user_id: int) -> None:
        """Their role was taken back: ``user_id``'s states stop presenting now, whatever their
        client does (a newer clock, which their client adopts as its own state)."""
        for peer in [p for p in self.peers if p.user_id == user_id and not self.may_present(p)]:
            ended = []
            for client_id in self.holdings.owned.get(peer, ()):
                entry = self.awareness.get(client_id)
                if entry is not None and entry.state is not None and neutralise(state := dict(entry.state)):
                    ended.append(state_entry(client_id, entry.clock + 1, state))
                    self.holdings.keep(peer, ended[-1], bounded=False)
            if ended:
                self._relay(peer, encode_awareness(ended))
                self._share_awareness(peer, ended)

    def _loud(self, peer: Peer) -> bool:
        """Whether ``peer``'s awareness reaches everyone (not so for most students)."""
        return True

    # ------------------------------------------------------------- other server processes

    def _share(self, kind: bytes, body: bytes) -> None:
        if self._publish is not None:
            self._publish(kind, body)

    def _share_awareness(self, peer: Peer, entries: list[AwarenessEntry]) -> None:
        if self._publish is not None:
            users = {entry.client_id: peer.user_id for entry in entries}
            self._publish(AWARENESS, awareness_body(awareness_payload(entries), users, self._loud(peer)))

    def local_awareness(self) -> None:
        """Tell the other processes every state this process's peers hold (after a resync, or
        to a process that just opened the room)."""
        for peer in list(self.peers):
            entries = [self.awareness[c] for c in self.holdings.owned.get(peer, ()) if c in self.awareness]
            if entries:
                self._share_awareness(peer, entries)

    def apply_remote(self, update: bytes) -> None:
        """A document update checked and stored by another server process: applied and passed
        on to the peers here, never stored again."""
        before = self.doc.get_state()
        self.doc.apply_update(update)
        if self.doc.get_state() == before:
            return  # nothing new (an answer to another process's question, say)
        self._guard.follow(update)
        self._nesting.note(update)
        self._broadcast(create_update_message(update))

    def remote_awareness(self, origin: str, body: bytes) -> None:
        """Awareness states of another process's peers, checked and named there."""
        payload, users, loud = parse_awareness_body(body)
        accepted = []
        for sent in parse_awareness(payload):
            current = self.awareness.get(sent.client_id)
            if current is not None and sent.clock <= current.clock:
                continue
            if self.holdings.owner.get(sent.client_id) is not None:
                continue  # held by a peer here, which the other process cannot know yet
            user_id = users.get(sent.client_id)
            if user_id is not None:
                self.clients.setdefault(sent.client_id, user_id)  # nobody here may take it over
            if sent.state is None:
                self.awareness.pop(sent.client_id, None)
                self.remote_owner.pop(sent.client_id, None)
                self.remote_loud.discard(sent.client_id)
            else:
                self.awareness[sent.client_id] = sent
                self.remote_owner[sent.client_id] = origin
                (self.remote_loud.add if loud else self.remote_loud.discard)(sent.client_id)
                taken_back = self.grants.note(sent.client_id, sent.state, self.holdings.owner_of)
                if taken_back is not None:
                    self._end_presenting(taken_back)
            accepted.append(sent)
        if accepted:
            self._relay_remote(encode_awareness(accepted), loud)

    def forget_process(self, origin: str) -> None:
        """Another process stopped: its peers' pointers and presence go for everyone here."""
        gone = []
        for client_id in [c for c, o in self.remote_owner.items() if o == origin]:
            del self.remote_owner[client_id]
            self.remote_loud.discard(client_id)
            entry = self.awareness.pop(client_id, None)
            if entry is not None and entry.state_json != "null":
                gone.append(AwarenessEntry(client_id, entry.clock + 1, "null"))
        if gone:
            self._broadcast(encode_awareness(gone))

    def _relay_remote(self, data: bytes, loud: bool) -> None:
        """Pass on another process's awareness message (to everyone, here)."""
        self._broadcast(data)

    def _broadcast(self, data: bytes, skip: Peer | None = None) -> None:
        """Encoded once, queued for every peer (a slow peer's queue does not hold up others)."""
        for peer in list(self.peers):
            if peer is not skip:
                peer.send(data)
