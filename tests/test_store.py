"""The database: schema upgrades in place, nothing lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collab.store.accounts import Accounts
from collab.store.database import Database
from collab.store.migrations import MIGRATIONS
from tests.conftest import PASSWORD, add_user, collab, connect_db, database_for, sqlite_only


@sqlite_only("a schema-1 SQLite file; tests/test_postgres.py upgrades a PostgreSQL database")
def test_a_first_release_database_upgrades_in_place(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Exactly what the first release wrote: schema 1 and some records.
    with connect_db(data_dir) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO organisations (id, name, network) VALUES (1, 'North Trust', 'North')")
        db.execute(
            "INSERT INTO cases (id, accession, org_id, priority, status, created)"
            " VALUES ('00112233aabbccdd', 'OLD-1', 1, 'urgent', 'new', '2026-01-02T03:04:05+00:00')"
        )
        db.execute(
            "INSERT INTO slides (id, case_id, path, stain, width, height, vendor, added) VALUES"
            " ('ffeeddccbbaa9988', '00112233aabbccdd', '/slides/a.svs', 'H&E', 10, 20, 'aperio',"
            " '2026-01-02T03:04:05+00:00')"
        )
    add_user(data_dir, "n.path", "pathologist", "North Trust")  # any command opens, and so upgrades
    with connect_db(data_dir) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("SELECT accession, priority, patient_name FROM cases").fetchall() == [
            ("OLD-1", "urgent", None)
        ]
        assert db.execute("SELECT id, path, stain FROM slides").fetchall() == [
            ("ffeeddccbbaa9988", "/slides/a.svs", "H&E")
        ]
        assert db.execute("SELECT username, role FROM users").fetchall() == [("n.path", "pathologist")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Shares on an upgraded database work as on a new one.
    shared = collab("cases", "share", "OLD-1", "--user", "n.path", "--read-only", data_dir=data_dir)
    assert shared.returncode == 0, shared.stderr


@sqlite_only("PRAGMA user_version; tests/test_postgres.py refuses a newer PostgreSQL database")
def test_a_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with connect_db(data_dir) as db:
        db.execute("PRAGMA user_version = 99")
    result = collab("orgs", "add", "X", data_dir=data_dir)
    assert result.returncode == 1
    assert "written by a newer collab (schema 99)" in result.stderr
    with connect_db(data_dir) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_user_commands_refuse_mistakes_clearly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    collab("orgs", "add", "North Trust", data_dir=data_dir)
    short = collab(
        "users",
        "add",
        "a.b",
        "--role",
        "pathologist",
        "--org",
        "North Trust",
        "--password-stdin",
        data_dir=data_dir,
        stdin="short\n",
    )
    assert (short.returncode, short.stderr) == (1, "collab: the password must be at least 12 characters\n")
    no_org = collab(
        "users",
        "add",
        "a.b",
        "--role",
        "pathologist",
        "--org",
        "Nowhere",
        "--password-stdin",
        data_dir=data_dir,
        stdin=PASSWORD + "\n",
    )
    assert no_org.returncode == 1 and "no organisation named 'Nowhere'" in no_org.stderr
    add_user(data_dir, "a.b", "pathologist", "North Trust")
    again = collab(
        "users",
        "add",
        "a.b",
        "--role",
        "pathologist",
        "--org",
        "North Trust",
        "--password-stdin",
        data_dir=data_dir,
        stdin=PASSWORD + "\n",
    )
    assert (again.returncode, again.stderr) == (1, "collab: a user named 'a.b' already exists\n")
    token = collab("users", "token", "nobody", data_dir=data_dir)
    assert (token.returncode, token.stderr) == (1, "collab: no user named 'nobody'\n")
    with connect_db(data_dir) as db:
        stored = db.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_nul_character_finds_nothing_and_keeps_the_rest_of_the_text(tmp_path: Path) -> None:
    """Anyone may put a NUL in a form or a URL. A lookup finds nothing, and text keeps the rest of
    what was typed. (PostgreSQL's text cannot hold NUL: there every such lookup was a 500.)"""
    data_dir = tmp_path / "data"
    collab("orgs", "add", "North Trust", data_dir=data_dir)
    add_user(data_dir, "n.path", "pathologist", "North Trust")

    async def run() -> tuple[object, object, str]:
        async with Database(data_dir / "collab.sqlite3", database_for(data_dir)) as db:
            unknown = await db.people.user_by_username("n.path\x00")
            no_password = await db.people.password_hash("\x00n.path")
            user = await db.people.user_by_username("n.path")
            assert user is not None
            await Accounts(db).update(user.id, display_name="Dr Ada\x00 North")
            changed = await db.people.user_by_username("n.path")
            assert changed is not None
            return unknown, no_password, changed.display_name

    unknown, no_password, name = asyncio.run(run())
    assert unknown is None and no_password is None
    assert name.startswith("Dr Ada") and name.endswith(" North") and len(name) == len("Dr Ada\x00 North")
