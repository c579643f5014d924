"""Whether a participant's document update may be applied: which parts of a case's document
they may change, and whose annotations and messages (docs/sync.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pycrdt import Array, Doc, Map

from collab.sync.discussion import DISCUSSION, Messages, Watch
from collab.sync.peer import Peer, Rejected
from collab.sync.protocol import parse_state_vector

TOO_LARGE = 4413  # a bounded root grew past its bound (collab.sync.room.BOUNDED_ROOTS)


class Guard:
    """Tries each update on a twin of the room's document, kept in step with it, and notes what
    the try changed there. Copying the document for every update made each update cost the
    whole document: five people drawing on a case with a few hundred annotations left the
    server minutes behind (tests/test_resilience.py)."""

    def __init__(
        self,
        doc: Doc[Any],
        messages: Messages | None,
        roots: Mapping[str, type],
        server_roots: frozenset[str],
        bounded_roots: Mapping[str, int],
    ) -> None:
        self._doc = doc
        self._messages = messages
        self._roots = roots
        self._server_roots = server_roots
        self._bounded_roots = bounded_roots
        self._trial: Doc[Any] | None = None
        self._watching: list[Any] = []
        self._touched: dict[str, set[Any]] = {}
        self._watch: Watch | None = None  # the twin's discussion

    def follow(self, update: bytes) -> None:
        """The room's document took an update that needs no check (the server's own change, or
        one another process checked): the twin takes it too."""
        if self._trial is not None:
            self._trial.apply_update(update)

    def _twin(self) -> Doc[Any]:
        """The trial twin of the document, made when first needed (and again after a refusal)."""
        if self._trial is None:
            trial: Doc[Any] = Doc()
            # The discussion is watched message by message, from the copy on (collab.sync.discussion).
            self._watch = Watch(trial) if DISCUSSION in self._roots else None
            trial.apply_update(self._doc.get_update())
            # The subscriptions are kept: pycrdt drops an observer whose subscription is gone.
            self._watching = [
                trial.get(root, type=kind).observe_deep(self._observer(root))
                for root, kind in self._roots.items()
                if root != DISCUSSION
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

    def check(self, peer: Peer, update: bytes, clients: Mapping[int, int]) -> None:
        """Apply the update to the twin first: refuse unknown roots and others' annotations or messages.
        A refused update has changed the twin, so it is dropped and made again when next needed."""
        try:
            self._check_on_twin(peer, update, clients)
        except BaseException:
            self._trial = None
            self._watching = []
            raise

    def _check_on_twin(self, peer: Peer, update: bytes, clients: Mapping[int, int]) -> None:
        trial = self._twin()
        self._touched = {}
        if self._watch is not None:
            self._watch.reset()
        clocks = _clocks(trial)
        try:
            trial.apply_update(update)
        except Exception as exc:
            raise Rejected(4400, "malformed document update") from exc
        # The Yjs clients whose items this update added: their clocks moved in the twin.
        made = {client for client, clock in _clocks(trial).items() if clock > clocks.get(client, 0)}
        unknown = set(trial.keys()) - set(self._roots)
        if unknown:
            raise Rejected(4400, f"unknown document parts: {', '.join(sorted(unknown))}")
        if self._watch is not None and self._watch.touched:
            self._touched.setdefault(DISCUSSION, set())
        if not peer.contribute and self._touched.keys() - {DISCUSSION}:
            parts = ", ".join(sorted(self._touched.keys() - {DISCUSSION}))
            raise Rejected(4403, f"read-only: only the discussion is open to this participant, not {parts}")
        for root in self._server_roots & self._touched.keys():
            if _plain(trial, root, self._roots[root]) != _plain(self._doc, root, self._roots[root]):
                raise Rejected(4403, f"{root} is written by the server only")
        for root in self._bounded_roots.keys() & self._touched.keys():
            # As JSON, in one pass in Rust: its size before this update was bounded, and the
            # update by the frame size, so this costs no more than they do.
            size = len(str(trial.get(root, type=self._roots[root])).encode())
            limit = self._bounded_roots[root]
            if size > limit:
                raise Rejected(TOO_LARGE, f"{root} too large: {size} bytes of JSON, at most {limit}")
        # Whose work this update may carry: the sender's, and that of the people whose Yjs
        # clients made items in it. After a server crash a participant's client resends
        # what it had, including others' edits the server lost; a forgery made by the
        # sender's own client still names only the sender. (This read the clients from the
        # update's own state vector, which pycrdt gives only for items from a client's first
        # on: a replay of what followed stored work vouched for nobody, was refused with 4403,
        # and y-websocket gives up on 4403: every client was locked out after a crash.)
        vouched = {str(peer.user_id)} | {str(clients[c]) for c in made if c in clients}
        if "annotations" in self._touched:  # only the keys the update touched
            only = self._touched["annotations"]
            before, after = _authored(self._doc, "annotations", only), _authored(trial, "annotations", only)
            pairs = [(before.get(key), after.get(key)) for key in before.keys() | after.keys()]
            _judge(pairs, vouched, peer.moderate, "an annotation")
        if self._watch is not None and self._messages is not None and self._watch.touched:
            # Only the messages the update touched; known by id or content, not by place.
            _judge(self._watch.pairs(self._messages), vouched, peer.moderate, "a message")


def _plain(doc: Doc[Any], root: str, kind: type) -> Any:
    """A root's content as plain Python (None when absent)."""
    if root not in set(doc.keys()):
        return None
    return _py(doc.get(root, type=kind))


def _py(value: Any) -> Any:
    """A value of a map as plain Python (shared types converted, plain values as they are).
    Maps and arrays go through yrs's JSON, one pass in Rust: pycrdt's ``to_py`` reads an array
    index by index, each time from its start."""
    if isinstance(value, (Map, Array)):
        return json.loads(str(value))
    return value.to_py() if hasattr(value, "to_py") else value


def _clocks(doc: Doc[Any]) -> dict[int, int]:
    """The document's state vector: Yjs client id -> items seen from it."""
    try:
        return parse_state_vector(doc.get_state())
    except Exception:  # a client id past what browsers can read: it vouches for nobody
        return {}


def _authored(doc: Doc[Any], root: str, only: set[Any]) -> dict[str, Any]:
    """The entries of a map of authored entries (the annotations) in ``only``, by key."""
    if root not in set(doc.keys()):
        return {}
    entries = doc.get(root, type=Map)
    values = {key: _py(entries[key]) for key in only if key in entries}
    return {key: (value if isinstance(value, dict) else {"value": value}) for key, value in values.items()}


def _judge(pairs: list[tuple[Any, Any]], vouched: set[str], moderate: bool, what: str) -> None:
    """Refuse a change to an annotation or message (before, after; None for absent) unless
    ``vouched`` names its author (or ``moderate``), and any new one not in a vouched name."""
    for old, new in pairs:
        if old == new:
            continue
        if old is None:
            if new is not None and str(new.get("author")) not in vouched:
                raise Rejected(4403, f"{what} must carry its author's own id")
        elif str(old.get("author")) not in vouched and not moderate:
            # Moderation: pathologists of the owning trust may correct or remove.
            raise Rejected(4403, "only the author or a pathologist of the owning trust may change that")
        elif new is not None and new.get("author") != old.get("author"):
            raise Rejected(4403, f"{what}'s author cannot change")
