"""Rooms by case: loaded on first join, saved in batches, unloaded after the last leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc

from collab.metrics import Histogram
from collab.singleflight import SingleFlight
from collab.store.documents import Documents
from collab.store.errors import DATA_ERRORS
from collab.sync.path import PathSample
from collab.sync.room import Room

log = logging.getLogger("collab.sync")

# Updates reach the disk within this window of arriving (one transaction per window).
FLUSH_WINDOW_S = 0.05
# After the disk refused a batch, the next try waits this long (the busy timeout comes on top).
RETRY_AFTER_S = 1.0
# A document's update log is folded into a snapshot once it is this long.
COMPACT_AFTER = 500
# Data errors are dropped; anything else the database raises (collab.store.errors) is retried.


class Rooms:
    """Every open room, and the one writer that saves their updates."""

    def __init__(self, documents: Documents, room_class: type[Room] = Room) -> None:
        self.documents = documents
        self._room_class = room_class  # teaching sessions have their own (collab.sync.teaching)
        self._rooms: dict[str, Room] = {}
        self._loading: SingleFlight[Room] = SingleFlight()
        self._pending: list[tuple[str, bytes]] = []
        self._pending_clients: list[tuple[str, int, int]] = []
        self._pending_path: list[PathSample] = []
        self._saving: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._writing = 0  # rows of batches in a transaction now
        # For /metrics (collab.metrics): plain counts, changed on the event loop only.
        self.updates_received = 0
        self.updates_written = 0
        self.write_failures = 0
        self.rows_dropped = 0
        self.write_seconds = Histogram()

    def __len__(self) -> int:
        """Rooms open now."""
        return len(self._rooms)

    @property
    def peer_count(self) -> int:
        """Connections joined to an open room now."""
        return sum(len(room.peers) for room in self._rooms.values())

    @property
    def queued_rows(self) -> int:
        """Rows received and not yet in the database: queued, or in a transaction under way."""
        return len(self._pending) + len(self._pending_clients) + len(self._pending_path) + self._writing

    async def __aenter__(self) -> Rooms:
        self._writer = asyncio.create_task(self._write_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        # A write under way goes on to its end; what it could not store is queued again.
        await asyncio.gather(*self._saving, return_exceptions=True)
        await self.flush()

    async def join(self, case_id: str) -> Room:
        """The room of a case, loading it once however many join at the same instant."""
        room = self._rooms.get(case_id)
        if room is not None:
            return room
        return await self._loading.run(case_id, lambda: self._load(case_id))

    async def _load(self, case_id: str) -> Room:
        room = self._room_class(
            case_id,
            await self.documents.load(case_id),
            self._persist,
            clients=await self.documents.clients(case_id),
            persist_client=self._persist_client,
            save_path=self._save_path,
        )
        self._rooms[case_id] = room
        return room

    def open_room(self, case_id: str) -> Room | None:
        """The case's room if someone is connected to it."""
        return self._rooms.get(case_id)

    async def document(self, case_id: str) -> Doc[Any]:
        """The case's document as it stands: the live one if the room is open, else as stored."""
        room = self._rooms.get(case_id)
        if room is not None:
            return room.doc
        doc: Doc[Any] = Doc()
        for update in await self.documents.load(case_id):
            doc.apply_update(update)
        return doc

    async def left(self, room: Room) -> None:
        """After a peer left: an empty room is saved, compacted if long, and unloaded."""
        if room.peers or self._rooms.get(room.case_id) is not room:
            return
        try:
            await self.flush()
        except Exception:  # still queued: the room stays loaded until its updates are on disk
            log.warning("could not save case %s as its last participant left; kept in memory", room.case_id)
            return
        # Someone joined while we saved; or the last two peers left at once and the other
        # one's call, also past the check above, has unloaded the room already (a KeyError
        # and a traceback for this one's close, found by tests/test_fuzz.py).
        if room.peers or self._rooms.get(room.case_id) is not room:
            return
        del self._rooms[room.case_id]
        if room.path is not None:
            room.path.close()
            await self.flush()
        if await self.documents.pending_count(room.case_id) >= COMPACT_AFTER:
            await self.documents.compact(room.case_id, room.doc.get_update())

    def _persist(self, case_id: str, update: bytes) -> None:
        self._pending.append((case_id, update))
        self.updates_received += 1
        self._wake.set()

    def _persist_client(self, case_id: str, client_id: int, user_id: int) -> None:
        self._pending_clients.append((case_id, client_id, user_id))
        self._wake.set()

    def _save_path(self, sample: PathSample) -> None:
        self._pending_path.append(sample)
        self._wake.set()

    async def flush(self) -> None:
        """Write every update received so far, in one transaction.

        If the disk refuses (full, or locked past the busy timeout), the batch goes back to the
        front of the queue for the next try: it is never dropped while the server runs. If a row
        can never be stored (DATA_ERRORS), the batch is written again by halves: every other row
        lands once, and that one is dropped and logged. Nothing is written twice: a batch is
        written whole or not at all, and a write that has begun is carried to its end even if
        the caller is cancelled (it happens on the database's thread either way)."""
        batch = _Batch(self._pending, self._pending_clients, self._pending_path)
        if not batch.size():
            return
        self._pending, self._pending_clients, self._pending_path = [], [], []
        self._writing += batch.size()
        saving = asyncio.ensure_future(self._save(batch))
        self._saving.add(saving)
        saving.add_done_callback(self._saved)
        await asyncio.shield(saving)

    def _saved(self, saving: asyncio.Task[None]) -> None:
        self._saving.discard(saving)
        if not saving.cancelled():
            saving.exception()  # seen: a failed batch is queued again, and the write loop says so

    async def _save(self, batch: _Batch) -> None:
        todo = [batch]
        while todo:
            chunk = todo.pop()
            started = time.perf_counter()
            try:
                await self.documents.append(chunk.updates, chunk.clients, [s.row() for s in chunk.path])
            except DATA_ERRORS as exc:
                if chunk.size() > 1:
                    todo.extend(reversed(chunk.split()))
                    continue
                self._writing -= 1
                self.rows_dropped += 1
                kind, case_id = chunk.describe()
                log.error(
                    "dropped a %s of case %r that cannot be stored (%s)", kind, case_id, type(exc).__name__
                )
            except BaseException as exc:
                if isinstance(exc, Exception):  # not a shutdown
                    self.write_failures += 1
                # Back in the queue (counted there) with no await between: the depth stays exact.
                self._writing -= chunk.size() + sum(rest.size() for rest in todo)
                self._requeue([chunk, *reversed(todo)])
                raise
            else:
                self.write_seconds.observe(time.perf_counter() - started)
                self._writing -= chunk.size()
                self.updates_written += len(chunk.updates)

    def _requeue(self, batches: list[_Batch]) -> None:
        self._pending[:0] = [row for batch in batches for row in batch.updates]
        self._pending_clients[:0] = [row for batch in batches for row in batch.clients]
        self._pending_path[:0] = [sample for batch in batches for sample in batch.path]
        self._wake.set()  # the write loop tries again

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_WINDOW_S)  # gather the window's updates into one transaction
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # kept in the queue and tried again; say so loudly
                log.exception("could not save document updates; trying again in %s s", RETRY_AFTER_S)
                await asyncio.sleep(RETRY_AFTER_S)
                self._wake.set()


@dataclass
class _Batch:
    """Rows to write in one transaction: updates, Yjs client owners, presenter path samples."""

    updates: list[tuple[str, bytes]] = field(default_factory=list)
    clients: list[tuple[str, int, int]] = field(default_factory=list)
    path: list[PathSample] = field(default_factory=list)

    def size(self) -> int:
        return len(self.updates) + len(self.clients) + len(self.path)

    def split(self) -> list[_Batch]:
        """Smaller batches holding the same rows, in order: by kind, then by halves."""
        kinds = [_Batch(updates=self.updates), _Batch(clients=self.clients), _Batch(path=self.path)]
        kinds = [kind for kind in kinds if kind.size()]
        if len(kinds) > 1:
            return kinds
        half = self.size() // 2
        return [
            _Batch(self.updates[:half], self.clients[:half], self.path[:half]),
            _Batch(self.updates[half:], self.clients[half:], self.path[half:]),
        ]

    def describe(self) -> tuple[str, str]:
        """What kind of row the first one is, and its case: enough to log, nothing of its content."""
        if self.updates:
            return "document update", self.updates[0][0]
        if self.clients:
            return "Yjs client owner", self.clients[0][0]
        return "presenter path sample", self.path[0].case_id
