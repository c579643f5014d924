"""One SQLite database (WAL) behind one aiosqlite connection, which serialises writes."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from collab.domain import PRIORITIES, Case, Organisation, SlideRecord
from collab.store.migrations import MIGRATIONS


class StoreError(Exception):
    """A request the database refuses; the message is fit to show a user."""


def new_id() -> str:
    """An opaque identifier that says nothing about what it names."""
    return secrets.token_hex(8)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """The collab database; use as ``async with Database(path) as db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None

    async def __aenter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path)
        self._conn.row_factory = sqlite3.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        # The CLI and a running server may share the file: wait for the other writer.
        await self._conn.execute("PRAGMA busy_timeout=5000")
        await self._migrate()
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
        async with self.conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database {self.path} was written by a newer collab (schema {version}); upgrade collab"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump rides in the same script.
            await self.conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    # -- organisations --------------------------------------------------------

    async def add_org(self, name: str, network: str | None = None) -> Organisation:
        """Create an organisation; names are unique."""
        name = name.strip()
        if not name:
            raise StoreError("an organisation needs a name")
        try:
            cursor = await self.conn.execute(
                "INSERT INTO organisations (name, network) VALUES (?, ?)", (name, network)
            )
            await self.conn.commit()
        except sqlite3.IntegrityError:
            raise StoreError(f"an organisation named {name!r} already exists") from None
        assert cursor.lastrowid is not None
        return Organisation(cursor.lastrowid, name, network)

    async def org_by_name(self, name: str) -> Organisation | None:
        row = await self._one("SELECT * FROM organisations WHERE name = ?", (name,))
        return Organisation(row["id"], row["name"], row["network"]) if row else None

    # -- cases ----------------------------------------------------------------

    async def add_case(self, accession: str, org_id: int, priority: str = "routine") -> Case:
        """Create a case owned by an organisation."""
        accession = accession.strip()
        if not accession:
            raise StoreError("a case needs an accession number")
        if priority not in PRIORITIES:
            raise StoreError(f"priority must be one of {', '.join(PRIORITIES)}")
        case = Case(new_id(), accession, org_id, priority, "new", now_iso())
        try:
            await self.conn.execute(
                "INSERT INTO cases (id, accession, org_id, priority, status, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (case.id, case.accession, case.org_id, case.priority, case.status, case.created),
            )
            await self.conn.commit()
        except sqlite3.IntegrityError:
            raise StoreError(f"a case with accession {accession!r} already exists") from None
        return case

    async def case_by_accession(self, accession: str) -> Case | None:
        row = await self._one("SELECT * FROM cases WHERE accession = ?", (accession,))
        return _case(row) if row else None

    async def case(self, case_id: str) -> Case | None:
        row = await self._one("SELECT * FROM cases WHERE id = ?", (case_id,))
        return _case(row) if row else None

    async def cases(self) -> list[Case]:
        rows = await self._all(
            "SELECT * FROM cases ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN '2ww' THEN 1"
            " ELSE 2 END, created, accession"
        )
        return [_case(r) for r in rows]

    # -- slides ---------------------------------------------------------------

    async def add_slide(
        self, case_id: str, path: str, *, width: int, height: int, vendor: str | None, stain: str | None
    ) -> tuple[SlideRecord, bool]:
        """Register a slide file with a case; returns the record and whether it is new."""
        existing = await self._one("SELECT * FROM slides WHERE case_id = ? AND path = ?", (case_id, path))
        if existing:
            return _slide(existing), False
        record = SlideRecord(new_id(), case_id, path, stain, width, height, vendor, now_iso())
        await self.conn.execute(
            "INSERT INTO slides (id, case_id, path, stain, width, height, vendor, added)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, case_id, path, stain, width, height, vendor, record.added),
        )
        await self.conn.commit()
        return record, True

    async def slide(self, slide_id: str) -> SlideRecord | None:
        row = await self._one("SELECT * FROM slides WHERE id = ?", (slide_id,))
        return _slide(row) if row else None

    async def slides_of_case(self, case_id: str) -> list[SlideRecord]:
        rows = await self._all("SELECT * FROM slides WHERE case_id = ? ORDER BY added, id", (case_id,))
        return [_slide(r) for r in rows]


def _case(row: sqlite3.Row) -> Case:
    return Case(row["id"], row["accession"], row["org_id"], row["priority"], row["status"], row["created"])


def _slide(row: sqlite3.Row) -> SlideRecord:
    return SlideRecord(
        row["id"],
        row["case_id"],
        row["path"],
        row["stain"],
        row["width"],
        row["height"],
        row["vendor"],
        row["added"],
    )
