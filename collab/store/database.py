"""The collab database: by default one SQLite file (WAL) behind one aiosqlite connection, which
serialises writes; or a PostgreSQL database (collab.store.postgres), chosen by a database URL.

The store modules write SQLite's SQL through ``one``, ``all``, ``write`` and ``conn``; on
PostgreSQL it is translated (collab.store.dialect)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import aiosqlite

from collab.store.dburl import DatabaseUrl, parse_database_url
from collab.store.migrations import MIGRATIONS


class StoreError(Exception):
    """A request the database refuses; the message is fit to show a user."""


class Row(Protocol):
    """A result row: by index or column name (``sqlite3.Row``, or collab.store.postgres.Row)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


def new_id() -> str:
    """An opaque identifier that says nothing about what it names."""
    return secrets.token_hex(8)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """The collab database; use as ``async with Database(path) as db``, or
    ``Database(path, url)`` where ``url`` (``sqlite:///FILE``, ``postgresql://...``) overrides
    the file.

    Records are reached through ``db.catalog`` (organisations, cases, slides,
    shares), ``db.people`` (users, sessions, tokens), ``db.opinions`` (second-opinion
    requests), ``db.meetings`` (MDT meetings), ``db.teaching`` (teaching sessions)
    and ``db.audit``.
    """

    def __init__(self, path: Path, url: str | None = None) -> None:
        from collab.store.analyses import Analyses
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

        self.target: DatabaseUrl = parse_database_url(url, path)
        self.engine = self.target.engine
        self.path = self.target.path or path
        self._conn: Any = None  # aiosqlite.Connection, or collab.store.postgres.PgConnection
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
        self.analyses = Analyses(self)

    async def __aenter__(self) -> Self:
        if self.engine == "postgresql":
            await self._open_postgres()
            return self
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
            if self.engine == "postgresql":
                await self._conn.pool.close()
            else:
                await self._conn.close()
            self._conn = None

    async def _open_postgres(self) -> None:
        import psycopg

        from collab.store import postgres

        try:
            await postgres.migrate(self.target.conninfo)
            pool = await postgres.open_pool(self.target.conninfo)
        except postgres.NewerSchema as newer:
            raise StoreError(
                f"the database {self.target} was written by a newer collab"
                f" (schema {newer.version}); upgrade collab"
            ) from None
        except (psycopg.Error, OSError) as exc:
            # psycopg's messages name host, port and user, never the password; the URL is shown redacted.
            raise StoreError(f"cannot use the database {self.target}: {_first_line(exc)}") from None
        try:
            self._conn = postgres.PgConnection(pool, await postgres.identity_tables(pool))
        except BaseException:
            await pool.close()
            raise

    @property
    def conn(self) -> Any:
        """aiosqlite's connection, or on PostgreSQL one that answers the same calls."""
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
        on a fresh one to the file. On PostgreSQL: a query on a connection from the pool.

        The first finds a connection whose thread is stuck behind a statement; the second a file
        that is gone, unreadable or replaced: the open connection would go on reading (and
        writing) the file it opened, as if nothing had happened."""
        if self.engine == "postgresql":
            await self.one("SELECT 1")
            return
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
        if self.engine == "postgresql":
            row = await self.one("SELECT max(version) FROM collab_schema")
            return int(row[0]) if row and row[0] is not None else 0
        row = await self.one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def data_version(self) -> int:
        """A number that moves when another connection commits (it may move for our own too)."""
        if self.engine == "postgresql":
            # The next transaction id to be given: it moves with every writing transaction.
            row = await self.one("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        else:
            row = await self.one("PRAGMA data_version")
        return int(row[0]) if row else 0

    async def batch(self, steps: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Run each statement once per row of parameters, all in one transaction that nothing
        else enters: committed whole, or rolled back whole if anything in it fails."""
        if self.engine == "postgresql":
            await self.conn.batch(steps)
            return
        from collab.store.documents import atomically

        def write(conn: sqlite3.Connection) -> None:
            for sql, rows in steps:
                if rows:
                    conn.executemany(sql, rows)

        await atomically(self, write)

    async def one(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> Row | None:
        async with self.conn.execute(sql, _bound(params)) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def all(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[Row]:
        async with self.conn.execute(sql, _bound(params)) as cursor:
            return list(await cursor.fetchall())

    async def write(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> int | None:
        """Run one statement and commit; returns the new row id, if any."""
        cursor = await self.conn.execute(sql, _bound(params))
        await self.conn.commit()
        lastrowid: int | None = cursor.lastrowid
        return lastrowid


def _bound(params: Iterable[Any] | dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
    return params if isinstance(params, dict) else tuple(params)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
