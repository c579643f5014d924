"""A real PostgreSQL 15 cluster for the test session, and sync access to its databases.

The cluster lives in a temporary folder (its socket too) on a free port, with fsync off; each
test that needs a database gets a fresh one, copied from a migrated template. postgres refuses
to run as root: then initdb and pg_ctl run as the ``postgres`` user (made by Debian's package),
owning the folder.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

from collab.store import dialect

BIN = Path(os.environ.get("COLLAB_PG_BIN", "/usr/lib/postgresql/15/bin"))
TEMPLATE = "collab_template"


def available() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if not (BIN / "postgres").exists():
        return f"PostgreSQL is not installed ({BIN / 'postgres'} is missing)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """initdb, pg_ctl start / restart / stop, and fresh databases."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="collab-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self._names = itertools.count(1)
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--no-sync", "--locale=C",
            )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is ended (admin shutdown)."""
        self.stop("fast")
        self.start()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def make_template(self) -> None:
        """A database migrated by collab itself, copied for each test."""
        from collab.store.database import Database

        self.admin(f"CREATE DATABASE {TEMPLATE}")

        async def migrate() -> None:
            async with Database(Path("unused"), self.url(TEMPLATE)):
                pass

        asyncio.run(migrate())

    def new_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a server the test left running may still hold connections.
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())


class SyncDb:
    """A psycopg connection that takes the tests' SQLite SQL, as ``sqlite3.connect`` would be
    used: ``with connect(url) as db: db.execute(...).fetchone()`` (commits, and closes)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, cursor_factory=psycopg.ClientCursor)

    def execute(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]:
        bound = params if isinstance(params, dict) else tuple(params)
        return self.conn.execute(dialect.statement(sql), bound)

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(dialect.statement(sql), list(rows))

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SyncDb:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.conn.commit()
        self.conn.close()
