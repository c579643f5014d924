"""Rooms by case: loaded on first join, saved in batches, unloaded after the last leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc

from collab.metrics import Histogram
from collab.singleflight import SingleFlight
from collab.store.documents import Documents
from collab.store.errors import DATA_ERRORS
from collab.sync.bus import ASK, AWARENESS, UPDATE, Bus
from collab.sync.path import PathSample
from collab.sync.room import EMPTY_UPDATE, Room

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

    def __init__(
        self, documents: Documents, room_class: type[Room] = Room, bus: Bus | None = None, prefix: str = ""
    ) -> None:
        self.documents = documents
        self._room_class = room_class  # teaching sessions have their own (collab.sync.teaching)
        # Other server processes serving the same rooms (collab.sync.bus); rooms of this kind
        # are named ``prefix + id`` there.
        self._bus = bus
        self._prefix = prefix
        self._early: dict[str, list[tuple[str, bytes, bytes]]] = {}  # heard while loading
        if bus is not None:
            bus.attach(prefix, self)
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
        if self._bus is None:
            room = await self._new_room(case_id)
            self._rooms[case_id] = room
            return room
        # Subscribed before reading the database, and asking the other processes after: an
        # update is in one or the other, or in their answer (collab.sync.bus).
        self._early[case_id] = []
        try:
            await self._bus.subscribe(self._prefix + case_id)
            room = await self._new_room(case_id)
        except BaseException:
            del self._early[case_id]
            await self._bus.unsubscribe(self._prefix + case_id)
            raise
        self._rooms[case_id] = room
        for origin, kind, body in self._early.pop(case_id):
            self._apply(room, origin, kind, body)
        self._bus.publish(self._prefix + case_id, ASK, room.doc.get_state())
        return room

    async def _new_room(self, case_id: str) -> Room:
        bus, name = self._bus, self._prefix + case_id
        return self._room_class(
            case_id,
            await self.documents.load(case_id),
            self._persist,
            clients=await self.documents.clients(case_id),
            persist_client=self._persist_client,
            save_path=self._save_path,
            publish=(lambda kind, body: bus.publish(name, kind, body)) if bus is not None else None,
        )

    # ------------------------------------------------------------- other server processes

    def remote(self, room_id: str, origin: str, kind: bytes, body: bytes) -> None:
        """A message of another server process about one of our rooms (collab.sync.bus)."""
        early = self._early.get(room_id)
        if early is not None:
            early.append((origin, kind, body))
            return
        room = self._rooms.get(room_id)
        if room is not None:
            self._apply(room, origin, kind, body)

    def _apply(self, room: Room, origin: str, kind: bytes, body: bytes) -> None:
        if kind == UPDATE:
            room.apply_remote(body)
        elif kind == AWARENESS:
            room.remote_awareness(origin, body)
        elif kind == ASK and self._bus is not None:
            missing = room.doc.get_update(body)
            if missing != EMPTY_UPDATE:
                self._bus.publish(self._prefix + room.case_id, UPDATE, missing)
            room.local_awareness()

    def gone(self, origin: str) -> None:
        """Another process stopped: its peers' presence goes, and what it had sent us but may not
        have stored (its last flush window) is stored here. Every survivor may store the same
        difference: applying an update twice changes nothing, losing one loses work."""
        for room in list(self._rooms.values()):
            room.forget_process(origin)
            self._in_background(self._store_missing(room))

    async def _store_missing(self, room: Room) -> None:
        try:
            stored = await self._stored(room.case_id)
        except Exception:
            log.exception("could not read case %s after a server process stopped", room.case_id)
            return
        missing = room.doc.get_update(stored.get_state())
        if missing != EMPTY_UPDATE:
            self._persist(room.case_id, missing)

    def resync(self) -> None:
        """Redis was away: each room reads what the others stored meanwhile, asks them for the
        rest, and tells them its own peers' presence."""
        for room in list(self._rooms.values()):
            self._in_background(self._resync(room))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the rooms; a stop waits for it as for a write under way."""
        task = asyncio.create_task(work)
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _resync(self, room: Room) -> None:
        try:
            for update in await self.documents.load(room.case_id):
                room.apply_remote(update)
        except Exception:
            log.exception("could not read case %s again after Redis came back", room.case_id)
        if self._bus is not None and self._rooms.get(room.case_id) is room:
            self._bus.publish(self._prefix + room.case_id, ASK, room.doc.get_state())
            room.local_awareness()

    def open_room(self, case_id: str) -> Room | None:
        """The case's room if someone is connected to it."""
        return self._rooms.get(case_id)

    async def document(self, case_id: str) -> Doc[Any]:
        """The case's document as it stands: the live one if the room is open, else as stored."""
        room = self._rooms.get(case_id)
        if room is not None:
            return room.doc
        return await self._stored(case_id)

    async def _stored(self, case_id: str) -> Doc[Any]:
        """The case's document as the database holds it."""
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
        if self._bus is not None:
            await self._bus.unsubscribe(self._prefix + room.case_id)
        if room.path is not None:
            room.path.close()
            await self.flush()
        if await self.documents.pending_count(room.case_id) >= COMPACT_AFTER:
            await self.documents.compact(room.case_id)

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
