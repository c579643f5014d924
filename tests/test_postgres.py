"""The PostgreSQL store (COLLAB_TEST_DATABASE=postgresql): migrations, refusals, and a server that
carries on through a restart of PostgreSQL losing nothing it had received."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pycrdt import Map

from collab.store.database import Database
from collab.store.migrations import MIGRATIONS
from collab.store.migrations_pg import pg_migration
from tests import postgres
from tests.conftest import (
    ON_POSTGRES,
    REPO,
    Server,
    collab,
    database_for,
    start_server,
    stop_server,
    use_database,
)
from tests.test_resilience import (
    _annotators,
    _case_id,
    _committed_annotations,
    _fresh_copy,
    _people,
    _stored,
    _wait_for_log,
    _ws,
)
from tests.yclient import YClient

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only (COLLAB_TEST_DATABASE=postgresql)")


def _empty(cluster: postgres.Cluster, name: str) -> str:
    cluster.admin(f"CREATE DATABASE {name}")
    return cluster.url(name)


def test_a_first_release_database_upgrades_in_place(pg_cluster: postgres.Cluster, data_dir: Path) -> None:
    url = _empty(pg_cluster, "first_release")
    with postgres.SyncDb(url) as db:
        db.conn.execute(pg_migration(1).encode())
        db.execute("CREATE TABLE collab_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO collab_schema VALUES (1)")
        db.execute("INSERT INTO organisations (id, name, network) VALUES (1, 'North Trust', 'North')")
        db.execute(
            "INSERT INTO cases (id, accession, org_id, priority, status, created)"
            " VALUES ('00112233aabbccdd', 'OLD-1', 1, 'urgent', 'new', '2026-01-02T03:04:05+00:00')"
        )
    result = collab("orgs", "add", "South Trust", "--database-url", url, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    with postgres.SyncDb(url) as db:
        assert db.execute("SELECT version FROM collab_schema").fetchall() == [(len(MIGRATIONS),)]
        assert db.execute("SELECT accession, status FROM cases").fetchall() == [("OLD-1", "new")]
        # The id PostgreSQL gives next is past the row written with its own id.
        assert db.execute("SELECT id, name FROM organisations ORDER BY id").fetchall() == [
            (1, "North Trust"),
            (2, "South Trust"),
        ]


def test_a_newer_database_is_refused_untouched(pg_cluster: postgres.Cluster, data_dir: Path) -> None:
    url = _empty(pg_cluster, "newer")
    with postgres.SyncDb(url) as db:
        db.execute("CREATE TABLE collab_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO collab_schema VALUES (99)")
    result = collab("orgs", "add", "X", "--database-url", url, data_dir=data_dir)
    assert result.returncode == 1
    assert "written by a newer collab (schema 99)" in result.stderr
    with postgres.SyncDb(url) as db:
        tables = db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchall() == [("collab_schema",)]


def test_processes_starting_at_once_migrate_once(pg_cluster: postgres.Cluster, data_dir: Path) -> None:
    """Four processes open one empty database at the same moment: the advisory lock lets one
    migrate while the others wait, and each then does its work."""
    url = _empty(pg_cluster, "racing")
    commands = [
        [sys.executable, "-m", "collab", "orgs", "add", f"Trust {n}", "--data-dir", str(data_dir / str(n))]
        for n in range(4)
    ]
    env = {"COLLAB_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    running = [subprocess.Popen(c, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for c in commands]
    errors = [p.communicate(timeout=120)[1] for p in running]
    assert [p.returncode for p in running] == [0, 0, 0, 0], errors
    with postgres.SyncDb(url) as db:
        assert db.execute("SELECT version FROM collab_schema").fetchall() == [(len(MIGRATIONS),)]
        assert db.execute("SELECT count(*) FROM organisations").fetchone() == (4,)


def test_a_percent_sign_is_read_as_written_with_or_without_parameters(data_dir: Path) -> None:
    """psycopg reads ``%`` as the start of a placeholder, inside string literals too: a LIKE
    pattern or a date format in a statement with parameters failed, and one without any kept
    the doubled ``%%``."""

    async def run() -> list[object]:
        async with Database(data_dir / "collab.sqlite3", database_for(data_dir)) as db:
            quoted = await db.one("SELECT 'opinion %' || ? AS said", ("asked",))
            bare = await db.one("SELECT 7 % 3 AS rest, '100%' AS whole")
            assert quoted is not None and bare is not None
            return [quoted["said"], bare["rest"], bare["whole"]]

    assert asyncio.run(run()) == ["opinion %asked", 1, "100%"]


def test_the_password_is_never_shown(pg_cluster: postgres.Cluster, data_dir: Path) -> None:
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{pg_cluster.port}/no_such_database"
    result = collab("orgs", "add", "X", "--database-url", url, data_dir=data_dir)
    assert result.returncode == 1
    assert "no_such_database" in result.stderr and "***" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_backup_and_restore_name_the_postgresql_tools(data_dir: Path, tmp_path: Path) -> None:
    backup = collab("backup", str(tmp_path / "copy"), data_dir=data_dir)
    assert backup.returncode == 1 and "pg_dump" in backup.stderr, backup.stderr
    restore = collab("restore", str(tmp_path / "copy"), data_dir=data_dir)
    assert restore.returncode == 1 and "pg_restore" in restore.stderr, restore.stderr


def test_a_pg_dump_taken_while_a_room_draws_restores_every_committed_annotation(
    pg_cluster: postgres.Cluster, data_dir: Path, case: str, tmp_path: Path, servers: list[Server]
) -> None:
    """The backup docs/operations.md gives for PostgreSQL, taken while two people draw: pg_dump
    --format=custom, then pg_restore into an empty database on a new data dir holding the old
    one's secret.key. A server there gives a newcomer every annotation committed before the dump."""
    if shutil.which("node") is None or not (REPO / "node_modules" / "y-websocket").exists():
        pytest.skip("node and the npm packages (scripts/setup) are needed")
    people = _people(data_dir, 2)
    case_id = _case_id(data_dir)
    server = start_server(data_dir)
    servers.append(server)
    dump = tmp_path / "collab.dump"

    async def scenario() -> tuple[set[str], int]:
        async with _annotators(_ws(server.url), case_id, people) as annotators:
            await asyncio.gather(*(a.wait_for(lambda a=a: len(a.created) >= 20, "20") for a in annotators))
            committed = await asyncio.to_thread(_stored, data_dir, case_id)
            drawn = sum(len(a.created) for a in annotators)
            command = [str(postgres.BIN / "pg_dump"), "--format=custom", "--file", str(dump)]
            dumping = await asyncio.create_subprocess_exec(
                *command, str(database_for(data_dir)), stderr=subprocess.PIPE
            )
            _, err = await dumping.communicate()
            assert dumping.returncode == 0, err.decode()
            return committed, sum(len(a.created) for a in annotators) - drawn

    committed, drawn_meanwhile = asyncio.run(scenario())
    assert committed
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(data_dir / "secret.key", restored / "secret.key")
    name = f"restored_{os.getpid()}"
    url = _empty(pg_cluster, name)
    try:
        done = subprocess.run(
            [str(postgres.BIN / "pg_restore"), "--no-owner", "--dbname", url, str(dump)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        use_database(restored, url)
        again = start_server(restored)
        servers.append(again)
        found = asyncio.run(_fresh_copy(again, case_id, people[0].token, committed))
        assert committed <= found
        print(f"\n{len(committed)} annotations committed before pg_dump, {len(found)} in the dump;")
        print(f"{drawn_meanwhile} drawn while it ran")
    finally:
        for started in servers:
            if started.process.returncode is None:
                stop_server(started)
        pg_cluster.drop_database(name)


def _readyz(server: Server) -> int:
    return server.client.get("/readyz").status_code


def test_a_postgresql_restart_loses_nothing_the_server_received(
    pg_cluster: postgres.Cluster, data_dir: Path, case: str, servers: list[Server]
) -> None:
    """Annotations drawn before, during and after PostgreSQL is stopped (fast: every connection
    ended) and started again: every one is committed once it is back, and a newcomer gets them
    all; the server was never restarted, and /readyz said so while the database was away."""
    (person,) = _people(data_dir, 1)
    case_id = _case_id(data_dir)
    server = start_server(data_dir)
    servers.append(server)
    database = data_dir / "collab.sqlite3"  # unused on PostgreSQL: connect_file takes the URL

    def draw(client: YClient, label: str) -> None:
        client.annotations()[label] = Map(
            {"slide": "s1", "kind": "point", "points": [[1, 2]], "label": label,
             "author": str(person.user_id), "created": "2026-12-04T10:00:00Z"}
        )  # fmt: skip

    async def committed(want: set[str]) -> None:
        deadline = time.monotonic() + 60
        while not want <= await asyncio.to_thread(_committed_annotations, database, case_id):
            assert time.monotonic() < deadline, "annotations never reached PostgreSQL"
            await asyncio.sleep(0.05)  # the poll interval

    async def scenario() -> set[str]:
        client = await YClient(f"{_ws(server.url)}/{case_id}", person.token).connect()
        await client.synced.wait()
        before = {f"before-{n}" for n in range(5)}
        for label in sorted(before):
            draw(client, label)
        await committed(before)  # acknowledged: its window's transaction committed

        await asyncio.to_thread(pg_cluster.stop, "fast")
        during = {f"during-{n}" for n in range(5)}
        for label in sorted(during):
            draw(client, label)
        await asyncio.to_thread(_wait_for_log, server, "could not save document updates")
        assert await asyncio.to_thread(_readyz, server) == 503
        await asyncio.to_thread(pg_cluster.start)

        after = {f"after-{n}" for n in range(5)}
        for label in sorted(after):
            draw(client, label)
        everything = before | during | after
        await committed(everything)
        assert await asyncio.to_thread(_readyz, server) == 200
        await client.close()
        return await _fresh_copy(server, case_id, person.token, everything)

    seen = asyncio.run(scenario())
    assert {label for label in seen if "-" in label} >= {
        f"{w}-{n}" for w in ("before", "during", "after") for n in range(5)
    }
    assert server.process.poll() is None, "the server stopped"
