"""A thread-safe least-recently-used cache bounded by the total size of its values."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class SizedLRU(Generic[V]):
    """Keeps the most recently used values whose sizes add up to at most ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.current_bytes = 0
        # Lookups, counted under the lock already held (read by /metrics, collab.metrics).
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._pending: dict[Hashable, Future[V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value for ``key``, or None; a hit makes it the most recent."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return item[0]

    def get_or_create_many(
        self, wanted: Sequence[tuple[Hashable, Callable[[], V]]], size: Callable[[V], int]
    ) -> list[V]:
        """The values for several keys, creating each missing one once across threads.

        Neighbouring tiles need the same decoded chunks at the same moment. Keys
        are claimed one at a time, and one that another thread is creating is
        waited for only after this thread has created every key nobody else had
        claimed: threads drawing tiles of one row share the decoding between them
        instead of queueing behind the first.
        """
        values: list[V | None] = [None] * len(wanted)
        theirs: list[tuple[int, Future[V]]] = []
        for i, (key, create) in enumerate(wanted):
            with self._lock:
                item = self._items.get(key)
                if item is not None:
                    self.hits += 1
                    self._items.move_to_end(key)
                    values[i] = item[0]
                    continue
                self.misses += 1  # being made by another thread, or to be made by this one
                pending = self._pending.get(key)
                if pending is not None:
                    theirs.append((i, pending))
                    continue
                future: Future[V] = Future()
                self._pending[key] = future
            try:
                value = create()
            except BaseException as exc:
                with self._lock:
                    del self._pending[key]
                future.set_exception(exc)
                raise
            self.put(key, value, size(value))
            with self._lock:
                del self._pending[key]
            future.set_result(value)
            values[i] = value
        for i, pending in theirs:
            values[i] = pending.result()
        return values  # type: ignore[return-value]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Store ``value``; values larger than the whole budget are not kept."""
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.current_bytes -= old[1]
            self._items[key] = (value, size)
            self.current_bytes += size
            while self.current_bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self.current_bytes -= evicted

    def discard_prefix(self, prefix: Hashable) -> None:
        """Drop every entry whose key is a tuple starting with ``prefix``."""
        with self._lock:
            for key in [k for k in self._items if isinstance(k, tuple) and k and k[0] == prefix]:
                self.current_bytes -= self._items.pop(key)[1]

    def __len__(self) -> int:
        return len(self._items)
