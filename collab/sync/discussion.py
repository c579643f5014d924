"""The case discussion as the room checks it: which messages an update removed, added or
changed, found at the cost of what it touched, never by reading the whole discussion.

Reading the whole `discussion` for every change cost seconds once it held some 16,000
messages (and grew with the square of it), for every post, and stays so after a restart.
Observing the discussion deeply is no better: for a change inside a message, yrs gives the
message's place in the array, which it finds by walking the array from its start, for every
changed message, before any callback can decline it.

So the room keeps, for its document, the messages in order (``Messages``, from the deltas of
one shallow observer), and for its trial twin one shallow observer on the array (deletions by
their place in the document before, insertions as they come) plus one observer per message
(changes inside it, with the old values). Only the messages an update touched are read.

This uses pycrdt's underlying yrs objects (``.integrated``) and their raw events: through
pycrdt's wrappers, each subscription inspects the callback's signature and each event value
is wrapped, which costs more than the check itself for a discussion of thousands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pycrdt import Array, Doc

DISCUSSION = "discussion"

# Marks the old side of a message changed deep inside (in a shared type within it): it differs
# from the new side whatever the values, so the change is judged.
_NESTED = object()


class Messages:
    """A document's messages in order, as yrs hands them out, kept in step with it."""

    def __init__(self, doc: Doc[Any]) -> None:
        self._doc = doc
        self._items: list[Any] = []
        # Kept: yrs drops an observer whose subscription is gone. Subscribed before the document
        # is loaded, so the first delta holds every message.
        self._subscription = doc.get(DISCUSSION, type=Array).integrated.observe(self._changed)

    def _changed(self, event: Any) -> None:
        at = 0
        for op in event.delta:
            if "retain" in op:
                at += op["retain"]
            elif "delete" in op:
                del self._items[at : at + op["delete"]]
            elif "insert" in op:
                self._items[at:at] = op["insert"]
                at += len(op["insert"])

    def entries(self, ranges: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
        """The messages at these places (start, stop), as plain data."""
        return [entry(plain(self._doc, value)) for start, stop in ranges for value in self._items[start:stop]]


class Watch:
    """What updates do to the discussion of the room's trial twin (from the first one applied
    to it on); ``reset`` before each."""

    def __init__(self, twin: Doc[Any]) -> None:
        self._twin = twin
        self._subscriptions: list[Any] = []  # kept, as above
        self._subscriptions.append(twin.get(DISCUSSION, type=Array).integrated.observe(self._changed))
        self.reset()

    def reset(self) -> None:
        self.removed: list[tuple[int, int]] = []  # places in the document before the update
        self.added: list[Any] = []
        self.edited: list[tuple[Any, list[tuple[list[Any], dict[str, Any] | None]]]] = []

    @property
    def touched(self) -> bool:
        return bool(self.removed or self.added or self.edited)

    def _changed(self, event: Any) -> None:
        before = 0
        for op in event.delta:
            if "retain" in op:
                before += op["retain"]
            elif "delete" in op:
                self.removed.append((before, before + op["delete"]))
                before += op["delete"]
            elif "insert" in op:
                self.added.extend(op["insert"])
                for value in op["insert"]:
                    if hasattr(value, "observe_deep"):
                        self._subscriptions.append(value.observe_deep(self._on(value)))

    def _on(self, message: Any) -> Any:
        # yrs calls this for a message that was there before the update and is still there.
        def edited(events: list[Any]) -> None:
            self.edited.append((message, [(list(e.path), getattr(e, "keys", None)) for e in events]))

        return edited

    def pairs(self, messages: Messages) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
        """Each message the last update touched: (before, after), None for absent.

        Removed and added messages are matched by ``keyed`` (so a message taken out and put back
        unchanged is no change); a message changed in place is itself before and after.
        """
        before = keyed(messages.entries(self.removed))
        after = keyed(entry(plain(self._twin, value)) for value in self.added)
        pairs = [(before.get(key), after.get(key)) for key in before.keys() | after.keys()]
        for message, events in self.edited:
            new = entry(plain(self._twin, message))
            old: dict[Any, Any] = dict(new)
            for path, keys in events:
                if path or keys is None:  # inside it, or a message that is no map
                    old[_NESTED] = True
                    continue
                for key, change in keys.items():
                    if change.get("action") == "add":
                        old.pop(key, None)
                    else:
                        old[key] = plain(self._twin, change.get("oldValue"))
            pairs.append((old, new))
        return pairs


def plain(doc: Doc[Any], value: Any) -> Any:
    """A value of the discussion as plain data. Maps and arrays go through yrs's own JSON, one
    pass in Rust (pycrdt's ``to_py`` reads an array index by index, each from its start)."""
    if hasattr(value, "to_json"):
        with doc.transaction() as txn:
            return json.loads(value.to_json(txn._txn))
    if hasattr(value, "get_string"):  # text
        with doc.transaction() as txn:
            return value.get_string(txn._txn)
    return value


def entry(value: Any) -> dict[str, Any]:
    """A message as a dict (another tool's message may be any value)."""
    return value if isinstance(value, dict) else {"value": value}


def keyed(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Messages by their id.

    A message without an id (another tool's) is keyed by its content, never by its position:
    concurrent posts reorder the array, and a position would pin one person's message on another.
    """
    by_key: dict[str, dict[str, Any]] = {}
    for message in entries:
        content = "~" + json.dumps(message, sort_keys=True, default=str)
        key = str(message["id"]) if message.get("id") else content
        while key in by_key:  # the same words posted twice are two messages
            key += "'"
        by_key[key] = message
    return by_key
