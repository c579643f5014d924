"""The PostgreSQL engine: a pool of psycopg connections that behaves like the one aiosqlite
connection the store modules were written for.

As in Python's sqlite3, a statement that changes rows opens a transaction, which lasts until
``commit`` or ``rollback``; reads outside one run in autocommit. Unlike one shared SQLite
connection, each task's transaction has a connection of its own from the pool, so another
request's commit or rollback never ends it halfway. A task that ends with its transaction open
has it rolled back. A statement that fails ends its transaction (PostgreSQL refuses any further
statement in it): it is rolled back at once.

Connections are checked when taken from the pool, so after the server restarts the broken ones
are replaced and the process carries on; while it is down, taking one waits (``POOL_TIMEOUT_S``)
then raises ``psycopg_pool.PoolTimeout``, an ``OperationalError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.adapt import Buffer
from psycopg.types.numeric import NumericLoader
from psycopg_pool import AsyncConnectionPool

from collab.store import dialect
from collab.store.migrations import MIGRATIONS
from collab.store.migrations_pg import pg_migration

log = logging.getLogger("collab.store")

POOL_MAX = 10
POOL_TIMEOUT_S = 5.0
# Held (pg_advisory_lock) while a process migrates, so two starting at once take turns.
MIGRATION_LOCK = 0x636F6C6C6162  # "collab"


class Row:
    """A result row by index or by column name, as ``sqlite3.Row``."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = tuple(values)
        self._names = names

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._names[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values, strict=False))!r})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names: dict[str, int] = {}
    for i, column in enumerate(cursor.description or ()):
        names.setdefault(column.name, i)  # the first of two same-named columns, as sqlite3.Row
    return lambda values: Row(values, names)


class _Numeric(NumericLoader):
    # sum() of integers is numeric in PostgreSQL; SQLite gives an int (or a float).
    def load(self, data: Buffer) -> Any:
        value = super().load(data)
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return value


class Cursor:
    """The rows a statement returned, read once, with ``rowcount`` and ``lastrowid``."""

    def __init__(self, rows: list[Row], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    async def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Pending:
    # Awaited or entered with ``async with``, as aiosqlite's execute.
    def __init__(self, running: Awaitable[Cursor]) -> None:
        self._running = running

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._running.__await__()

    async def __aenter__(self) -> Cursor:
        return await self._running

    async def __aexit__(self, *exc: object) -> None:
        return None


def _params(params: Any) -> Any:
    if isinstance(params, dict):
        return {key: _value(v) for key, v in params.items()}
    return tuple(_value(v) for v in params)


def _value(value: Any) -> Any:
    # psycopg sends a bool as boolean; the columns are integers, as in SQLite.
    if isinstance(value, bool):
        return int(value)
    # PostgreSQL's text cannot hold NUL (SQLite's can), and anyone may put one in a form or a
    # URL: passed as is, a lookup failed with a 500 where it should find nothing. No clinical
    # text needs it: it goes as U+FFFD, the character standing for one that cannot be shown.
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("numeric", _Numeric)


class PgConnection:
    """What ``Database.conn`` is on PostgreSQL: ``execute``, ``executemany``, ``commit``,
    ``rollback``, as on aiosqlite's connection."""

    def __init__(self, pool: AsyncConnectionPool[Any], identity_tables: frozenset[str]) -> None:
        self.pool = pool
        self._identity_tables = identity_tables  # where an INSERT returns the new row's id
        self._open: dict[asyncio.Task[Any], psycopg.AsyncConnection[Any]] = {}
        self._ending: set[asyncio.Task[None]] = set()

    @property
    def in_transaction(self) -> bool:
        """Whether any task has a transaction open, as sqlite3's attribute of the one connection."""
        return bool(self._open)

    def execute(self, sql: str, params: Any = ()) -> _Pending:
        return _Pending(self._execute(sql, params))

    async def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        conn = await self._transaction()
        try:
            async with conn.cursor() as cursor:
                await cursor.executemany(dialect.statement(sql), [_params(r) for r in rows])
        except BaseException:
            await self.rollback()
            raise

    async def commit(self) -> None:
        await self._end("COMMIT")

    async def rollback(self) -> None:
        await self._end("ROLLBACK")

    async def _execute(self, sql: str, params: Any) -> Cursor:
        query = dialect.statement(sql)
        table = dialect.inserted_table(sql)
        returning = table in self._identity_tables and "RETURNING" not in query.upper()
        if returning:
            query += " RETURNING id"
        conn = self._open.get(_task())
        if conn is None and dialect.writes(sql):
            conn = await self._transaction()
        if conn is not None:
            try:
                return await _run(conn, query, _params(params), returning)
            except BaseException:
                await self.rollback()
                raise
        async with self.pool.connection() as conn:
            return await _run(conn, query, _params(params), returning)

    async def _transaction(self) -> psycopg.AsyncConnection[Any]:
        task = _task()
        conn = self._open.get(task)
        if conn is not None:
            return conn
        conn = await self.pool.getconn()
        try:
            await conn.execute("BEGIN")
        except BaseException:
            await self.pool.putconn(conn)
            raise
        self._open[task] = conn
        task.add_done_callback(self._task_done)
        return conn

    async def _end(self, command: str) -> None:
        conn = self._open.pop(_task(), None)
        if conn is None:
            return
        try:
            await conn.execute(command)
        finally:
            # A broken connection is discarded by the pool, not handed out again.
            await self.pool.putconn(conn)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        conn = self._open.pop(task, None)
        if conn is None:
            return
        log.warning("a transaction was left open by its task; rolled back")

        async def end() -> None:
            try:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("ROLLBACK")
            finally:
                await self.pool.putconn(conn)

        ending = asyncio.get_running_loop().create_task(end())
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)

    async def batch(self, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Each (statement, rows) run for every row, all in one transaction of its own."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            for sql, rows in steps:
                if rows:
                    await cursor.executemany(dialect.statement(sql), [_params(r) for r in rows])


def _task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None, "the database is used from a running task"
    return task


async def _run(conn: psycopg.AsyncConnection[Any], query: str, params: Any, returning: bool) -> Cursor:
    async with conn.cursor() as cursor:
        # Always with parameters, even none: psycopg then reads %% as %, as dialect.statement wrote it.
        await cursor.execute(query, params)
        rows = await cursor.fetchall() if cursor.description else []
        lastrowid = int(rows[0][0]) if returning and rows else None
        return Cursor([] if returning else rows, cursor.rowcount, lastrowid)


async def open_pool(conninfo: str) -> AsyncConnectionPool[Any]:
    """A pool of autocommit connections that give ``Row`` rows; raises if the server does not
    answer within ``POOL_TIMEOUT_S``."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=POOL_MAX,
        timeout=POOL_TIMEOUT_S,
        open=False,
        kwargs={"autocommit": True, "row_factory": _row_factory, "cursor_factory": psycopg.AsyncClientCursor},
        configure=_configure,
        check=AsyncConnectionPool.check_connection,
        name="collab",
    )
    try:
        await pool.open(wait=True, timeout=POOL_TIMEOUT_S)
    except BaseException:
        await pool.close()
        raise
    return pool


async def migrate(conninfo: str) -> int:
    """Bring the schema up to date, one transaction per version, under an advisory lock so
    that two processes starting at once take turns. Returns the version found before; raises
    ``NewerSchema`` (and changes nothing) if it is newer than this collab knows."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS collab_schema (version INTEGER NOT NULL)")
            found = await (await conn.execute("SELECT max(version) FROM collab_schema")).fetchone()
            version = int(found[0]) if found and found[0] is not None else 0
            if version > len(MIGRATIONS):
                raise NewerSchema(version)
            for number in range(version + 1, len(MIGRATIONS) + 1):
                async with conn.transaction():
                    await conn.execute(pg_migration(number).encode())
                    await conn.execute("DELETE FROM collab_schema")
                    await conn.execute("INSERT INTO collab_schema (version) VALUES (%s)", (number,))
            if version < len(MIGRATIONS):
                await _resync_identities(conn)
            return version
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


async def _resync_identities(conn: psycopg.AsyncConnection[Any]) -> None:
    # Rows written with their own ids (as SQLite allows, and an older schema's data may hold)
    # leave an identity's sequence behind: the next id it gives would clash.
    cursor = await conn.execute(
        "SELECT table_name FROM information_schema.columns"
        " WHERE column_name = 'id' AND is_identity = 'YES' AND table_schema = current_schema()"
    )
    for (table,) in await cursor.fetchall():
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false)"
            f" FROM {table}".encode()
        )


class NewerSchema(Exception):
    """The database was written by a newer collab."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


async def identity_tables(pool: AsyncConnectionPool[Any]) -> frozenset[str]:
    """Tables whose ``id`` PostgreSQL makes (SQLite's INTEGER PRIMARY KEY): an INSERT into one
    returns the new id, which is ``lastrowid``."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE column_name = 'id' AND is_identity = 'YES' AND table_schema = current_schema()"
        )
        return frozenset(str(row[0]) for row in await cursor.fetchall())
