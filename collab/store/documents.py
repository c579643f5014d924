"""Shared documents of cases: a snapshot plus the updates appended since, compacted now and then."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pycrdt import Doc

from collab.store.database import now_iso

if TYPE_CHECKING:
    from collab.store.database import Database

T = TypeVar("T")


class Documents:
    """Stores Yjs updates as they come and gives them back to rebuild a document."""

    # Where: the update log, the snapshots, and the column naming the document.
    UPDATES, SNAPSHOTS, KEY = "doc_updates", "doc_snapshots", "case_id"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, case_id: str) -> list[bytes]:
        """The snapshot (if any) then every update not folded into it, oldest first."""
        snapshot = await self.db.one(f"SELECT state FROM {self.SNAPSHOTS} WHERE {self.KEY} = ?", (case_id,))
        rows = await self.db.all(
            f"SELECT update_data FROM {self.UPDATES} WHERE {self.KEY} = ? ORDER BY id", (case_id,)
        )
        return ([bytes(snapshot["state"])] if snapshot else []) + [bytes(r["update_data"]) for r in rows]

    async def append(
        self,
        updates: list[tuple[str, bytes]],
        clients: list[tuple[str, int, int]] | None = None,
        path: list[tuple[str, str, int, str, float, float, float, float]] | None = None,
    ) -> None:
        """Append (case id, update) pairs, (case id, Yjs client id, user id) owners and presenter
        path samples (collab.sync.path) in one transaction: once this returns, they are on disk;
        if it raises, none of them is. A client id keeps its first owner."""

        await self.db.batch(
            [
                ("INSERT INTO doc_updates (case_id, update_data) VALUES (?, ?)", list(updates)),
                (
                    "INSERT OR IGNORE INTO doc_clients (case_id, client_id, user_id) VALUES (?, ?, ?)",
                    list(clients or []),
                ),
                (
                    "INSERT INTO presenter_path (case_id, at, user_id, slide, x, y, width, rotation)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    list(path or []),
                ),
            ]
        )

    async def clients(self, case_id: str) -> dict[int, int]:
        """Owners of the document's Yjs client ids: client id -> user id."""
        rows = await self.db.all("SELECT client_id, user_id FROM doc_clients WHERE case_id = ?", (case_id,))
        return {int(r["client_id"]): int(r["user_id"]) for r in rows}

    async def path(self, case_id: str, limit: int = 20_000) -> list[dict[str, object]]:
        """The presenter path of a case, oldest first (the newest ``limit`` samples)."""
        rows = await self.db.all(
            "SELECT at, user_id, slide, x, y, width, rotation FROM ("
            " SELECT * FROM presenter_path WHERE case_id = ? ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
            (case_id, limit),
        )
        return [dict(r) for r in rows]

    async def pending_count(self, case_id: str) -> int:
        """How many updates a load would replay after the snapshot."""
        row = await self.db.one(f"SELECT count(*) FROM {self.UPDATES} WHERE {self.KEY} = ?", (case_id,))
        return int(row[0]) if row else 0

    async def compact(self, case_id: str) -> None:
        """Fold the snapshot and the updates stored after it into a new snapshot.

        Made of the stored rows, never of a document in memory: with several server processes,
        one's document may lack an update another has just stored. The rows folded are deleted
        by id (on PostgreSQL a row may commit after a row with a higher id), in the transaction
        that writes the snapshot, so a load replays exactly the rows not folded. That write
        happens only if the snapshot is still the one read: of two processes compacting a case
        at once, one wins and the other changes nothing. ``upto`` is the snapshot's version."""
        snapshot = await self.db.one(
            f"SELECT state, upto FROM {self.SNAPSHOTS} WHERE {self.KEY} = ?", (case_id,)
        )
        rows = await self.db.all(
            f"SELECT id, update_data FROM {self.UPDATES} WHERE {self.KEY} = ? ORDER BY id", (case_id,)
        )
        if not rows:
            return
        parts = ([bytes(snapshot["state"])] if snapshot else []) + [bytes(r["update_data"]) for r in rows]
        state = await asyncio.to_thread(_fold, parts)  # a long log is seconds of work
        version = secrets.randbits(62) + 1
        claim: tuple[str, list[tuple[Any, ...]]]
        if snapshot is None:
            claim = (
                f"INSERT INTO {self.SNAPSHOTS} ({self.KEY}, state, upto, saved) VALUES (?, ?, ?, ?)"
                f" ON CONFLICT({self.KEY}) DO NOTHING",
                [(case_id, state, version, now_iso())],
            )
        else:
            claim = (
                f"UPDATE {self.SNAPSHOTS} SET state = ?, upto = ?, saved = ?"
                f" WHERE {self.KEY} = ? AND upto = ?",
                [(state, version, now_iso(), case_id, snapshot["upto"])],
            )
        await self.db.batch(
            [
                claim,
                (
                    f"DELETE FROM {self.UPDATES} WHERE id = ? AND EXISTS ("
                    f"SELECT 1 FROM {self.SNAPSHOTS} WHERE {self.KEY} = ? AND upto = ?)",
                    [(r["id"], case_id, version) for r in rows],
                ),
            ]
        )


def _fold(updates: list[bytes]) -> bytes:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()


async def atomically(db: Database, write: Callable[[sqlite3.Connection], T]) -> T:
    """SQLite: run ``write`` and commit, as one transaction that nothing else on the connection enters:
    rolled back whole if anything in it fails.

    The whole transaction is one call on aiosqlite's thread (which runs one call at a time):
    awaited statement by statement, another coroutine's commit could land between two of ours
    and store half a batch, or our rollback undo its statements.
    """
    conn = db.conn
    # aiosqlite has no public way to run a function on its thread; _execute is what its own
    # execute and commit use.
    result: T = await conn._execute(_transaction, conn._conn, write)
    return result


def _transaction(conn: sqlite3.Connection, write: Callable[[sqlite3.Connection], T]) -> T:
    if conn.in_transaction:
        # Another coroutine's statements, awaiting its commit: committed now as that commit
        # would, so that our rollback never undoes them.
        conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = write(conn)
        conn.commit()
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the disk may have ended it already
            conn.rollback()
        raise
    return result
