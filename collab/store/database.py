"""One SQLite database (WAL) behind one aiosqlite connection, which serialises writes."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from collab.store.migrations import MIGRATIONS


class StoreError(Exception):
    """A request the database refuses; the message is fit to show a user."""


def new_id() -> str:
    """An opaque identifier that says nothing about what it names."""
    return secrets.token_hex(8)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """The collab database; use as ``async with Database(path) as db``.

    Records are reached through ``db.catalog`` (organisations, cases, slides,
    shares), ``db.people`` (users, sessions, tokens), ``db.opinions`` (second-opinion
    requests), ``db.meetings`` (MDT meetings), ``db.teaching`` (teaching sessions)
    and ``db.audit``.
    """

    def __init__(self, path: Path) -> None:
        from collab.store.audit import AuditLog
        from collab.store.case_notes import CaseNotes
        from collab.store.catalog import Catalog
        from collab.store.documents import Documents
        from collab.store.meetings import Meetings
        from collab.store.opinions import Opinions
        from collab.store.organisations import Organisations
        from collab.store.people import People
        from collab.store.sign_on import SignOn
        from collab.store.snapshots import Snapshots
        from collab.store.teaching import Teaching
        from collab.store.uploads import Uploads

        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self.catalog = Catalog(self)
        self.case_notes = CaseNotes(self)
        self.people = People(self)
        self.audit = AuditLog(self)
        self.documents = Documents(self)
        self.opinions = Opinions(self)
        self.meetings = Meetings(self)
        self.teaching = Teaching(self)
        self.uploads = Uploads(self)
        self.organisations = Organisations(self)
        self.snapshots = Snapshots(self)
        self.sign_on = SignOn(self)

    async def __aenter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path)
        self._conn.row_factory = sqlite3.Row
        try:
            # The CLI and a running server may share the file: wait for the other writer.
            await self._conn.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA foreign_keys=ON")

        except BaseException:
            # An open connection's thread would keep the process alive.
            await self._conn.close()
            self._conn = None
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        assert self._conn is not None, "database is not open"
        return self._conn

    async def _migrate(self) -> None:
        # Checked before anything is written, so a newer database is left as it was.
        version = await self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database {self.path} was written by a newer collab (schema {version}); upgrade collab"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump rides in the same script.
            await self.conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    async def ping(self) -> None:
        """Raise unless the database answers a real query, on the server's own connection and
        on a fresh one to the file.

        The first finds a connection whose thread is stuck behind a statement; the second a file
        that is gone, unreadable or replaced: the open connection would go on reading (and
        writing) the file it opened, as if nothing had happened."""
        await self.one("SELECT count(*) FROM sqlite_master")
        await asyncio.to_thread(self._ping_file)

    def _ping_file(self) -> None:
        # mode=rw: a missing file is an error, not a new empty database.
        fresh = sqlite3.connect(self.path.resolve().as_uri() + "?mode=rw", uri=True, timeout=1.0)
        try:
            fresh.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            fresh.close()

    async def schema_version(self) -> int:
        row = await self.one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def write(self, sql: str, params: Iterable[Any] = ()) -> int | None:
        """Run one statement and commit; returns the new row id, if any."""
        cursor = await self.conn.execute(sql, tuple(params))
        await self.conn.commit()
        return cursor.lastrowid
