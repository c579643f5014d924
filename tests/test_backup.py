"""``collab backup`` and ``collab restore`` as an operator runs them: a real server with a room
being drawn in (tests/node/annotator.mjs), the real command line, real SQLite files."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from collab.store.migrations import MIGRATIONS
from tests.conftest import REPO, Server, collab, seed_case, sqlite_only, start_server, stop_server
from tests.test_resilience import Person, _annotators, _case_id, _fresh_copy, _people, _stored, _ws

# collab backup and restore copy the SQLite file; on PostgreSQL they refuse (tests/test_postgres.py).
pytestmark = sqlite_only("backup and restore copy the SQLite file; PostgreSQL uses pg_dump/pg_restore")


@dataclass
class Live:
    """A seeded data dir and the server serving it, shared by the module's tests."""

    data_dir: Path
    server: Server
    case_id: str
    people: list[Person]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("live") / "data"
    data_dir.mkdir()
    seed_case(data_dir)
    people = _people(data_dir, 2)
    server = start_server(data_dir)
    yield Live(data_dir, server, _case_id(data_dir), people)
    stop_server(server)


@pytest.fixture(scope="module")
def backup(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup of the live data dir (taken while it serves)."""
    dest = tmp_path_factory.mktemp("backups") / "taken"
    result = collab("backup", str(dest), data_dir=live.data_dir)
    assert result.returncode == 0, result.stderr
    return dest


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path, with its bytes."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _annotations_in(database: Path, case_id: str) -> set[str]:
    """The case's annotations in a database file, read without writing a byte to it."""
    conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        snapshot = conn.execute(
            "SELECT state, upto FROM doc_snapshots WHERE case_id = ?", (case_id,)
        ).fetchone()
        rows = conn.execute(
            "SELECT update_data FROM doc_updates WHERE case_id = ? AND id > ? ORDER BY id",
            (case_id, snapshot[1] if snapshot else 0),
        ).fetchall()
    finally:
        conn.close()
    doc: Doc[Any] = Doc()
    for update in ([snapshot[0]] if snapshot else []) + [row[0] for row in rows]:
        doc.apply_update(bytes(update))
    return set(doc.get("annotations", type=Map).keys())


def _integrity(database: Path) -> list[str]:
    conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    finally:
        conn.close()


def _rewrite_manifest(backup: Path, change: Any) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    change(manifest)
    (backup / "manifest.json").write_text(json.dumps(manifest))


def test_a_backup_taken_while_a_room_draws_holds_every_committed_annotation_and_restores(
    live: Live, tmp_path: Path
) -> None:
    if shutil.which("node") is None or not (REPO / "node_modules" / "y-websocket").exists():
        pytest.skip("node and the npm packages (scripts/setup) are needed")
    dest = tmp_path / "backups" / "monday"

    async def scenario() -> tuple[set[str], subprocess.CompletedProcess[bytes], int]:
        async with _annotators(_ws(live.server.url), live.case_id, live.people) as annotators:
            await asyncio.gather(*(a.wait_for(lambda a=a: len(a.created) >= 20, "20") for a in annotators))
            # What the server had committed before the backup began; they go on drawing meanwhile.
            committed = await asyncio.to_thread(_stored, live.data_dir, live.case_id)
            drawn = sum(len(a.created) for a in annotators)
            command = [sys.executable, "-m", "collab", "backup", str(dest), "--data-dir", str(live.data_dir)]
            process = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, err = await process.communicate()
            drawn_meanwhile = sum(len(a.created) for a in annotators) - drawn
            for a in annotators:
                await a.stop()
        assert process.returncode is not None
        return committed, subprocess.CompletedProcess(command, process.returncode, out, err), drawn_meanwhile

    committed, result, drawn_meanwhile = asyncio.run(scenario())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith(f"{dest}: the database (schema {len(MIGRATIONS)},")
    assert not [p for p in dest.parent.iterdir() if p.name != "monday"]  # no work folder left
    assert _integrity(dest / "collab.sqlite3") == ["ok"]
    in_backup = _annotations_in(dest / "collab.sqlite3", live.case_id)
    assert committed and committed <= in_backup
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["schema"] == len(MIGRATIONS)
    assert {f["path"] for f in manifest["files"]} == {"collab.sqlite3", "secret.key", "server.log"}
    assert (dest / "secret.key").read_bytes() == (live.data_dir / "secret.key").read_bytes()

    # Onto a new machine's empty data dir: a server there gives a newcomer every one of them.
    restored = tmp_path / "restored"
    result_restore = collab("restore", str(dest), data_dir=restored)
    assert result_restore.returncode == 0, result_restore.stderr
    server = start_server(restored)
    try:
        found = asyncio.run(_fresh_copy(server, live.case_id, live.people[0].token, committed))
    finally:
        stop_server(server)
    assert found == in_backup
    # Once that server has stopped, its data dir can be restored over; what it held is kept aside.
    again = collab("restore", str(dest), data_dir=restored)
    assert again.returncode == 0, again.stderr
    (aside,) = restored.glob("before-restore-*")
    assert {"collab.sqlite3", "secret.key", "server.log"} <= set(os.listdir(aside))
    assert f"kept in {aside}" in again.stdout
    print(f"\n{len(committed)} annotations committed before the backup, {len(in_backup)} in it;")
    print(f"{drawn_meanwhile} drawn while it ran")


def test_restore_refuses_while_a_server_serves_the_data_dir_and_changes_nothing(
    live: Live, backup: Path
) -> None:
    database = live.data_dir / "collab.sqlite3"
    inode, names = database.stat().st_ino, set(os.listdir(live.data_dir))
    result = collab("restore", str(backup), data_dir=live.data_dir)
    assert result.returncode == 1
    assert result.stderr == (
        f"collab: {live.data_dir} is in use by a running collab server (or another collab command);"
        " stop it, then restore; nothing was restored\n"
    )
    assert database.stat().st_ino == inode and set(os.listdir(live.data_dir)) == names
    assert live.server.get("/healthz").status_code == 200


def _flip_a_byte(backup: Path) -> None:
    database = backup / "collab.sqlite3"
    data = bytearray(database.read_bytes())
    data[len(data) // 2] ^= 0xFF
    database.write_bytes(bytes(data))


def _edit_a_checksum(backup: Path) -> None:
    def change(manifest: dict[str, Any]) -> None:
        (key,) = [f for f in manifest["files"] if f["path"] == "secret.key"]
        key["sha256"] = "0" * 64

    _rewrite_manifest(backup, change)


DAMAGES = {
    "a byte of the database flipped": (_flip_a_byte, "collab.sqlite3 does not match its checksum"),
    "a checksum in the manifest edited": (_edit_a_checksum, "secret.key does not match its checksum"),
    "the manifest cut short": (
        lambda b: (b / "manifest.json").write_text((b / "manifest.json").read_text()[:100]),
        "manifest.json is damaged or was edited",
    ),
    "a file removed": (lambda b: (b / "secret.key").unlink(), "lacks secret.key, which its manifest lists"),
    "a file added": (lambda b: (b / "extra.txt").write_text("?"), "files its manifest does not list"),
    "no manifest (an interrupted backup)": (
        lambda b: (b / "manifest.json").unlink(),
        "has no manifest.json: it is not a complete collab backup",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_or_changed_backup_is_refused_and_nothing_is_changed(
    backup: Path, tmp_path: Path, damage: str
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    do, says = DAMAGES[damage]
    do(damaged)
    data_dir = tmp_path / "data"
    (data_dir / "slides").mkdir(parents=True)
    (data_dir / "collab.sqlite3").write_bytes(b"today's database")
    (data_dir / "slides" / "s.svs").write_bytes(b"today's slide")
    before = _tree(data_dir)
    result = collab("restore", str(damaged), data_dir=data_dir)
    assert result.returncode == 1
    assert says in result.stderr and result.stderr.startswith("collab: ")
    assert result.stderr.count("\n") == 1
    assert _tree(data_dir) == before


def test_a_backup_from_a_newer_collab_is_refused(backup: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(backup, newer)
    with sqlite3.connect(newer / "collab.sqlite3") as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()

    def change(manifest: dict[str, Any]) -> None:
        # Checksums true to the file: the refusal is for the schema alone.
        manifest["schema"] = len(MIGRATIONS) + 1
        (db,) = [f for f in manifest["files"] if f["path"] == "collab.sqlite3"]
        db["sha256"] = hashlib.sha256((newer / "collab.sqlite3").read_bytes()).hexdigest()

    _rewrite_manifest(newer, change)
    result = collab("restore", str(newer), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert f"was taken by a newer collab (collab 0.1.0, schema {len(MIGRATIONS) + 1}" in result.stderr
    assert not (tmp_path / "data").exists()
    # Nor does this collab back up such a database.
    (tmp_path / "newer-data").mkdir()
    shutil.copy(newer / "collab.sqlite3", tmp_path / "newer-data")
    copy = collab("backup", str(tmp_path / "again"), data_dir=tmp_path / "newer-data")
    assert copy.returncode == 1 and "written by a newer collab" in copy.stderr
    assert not (tmp_path / "again").exists()


def test_backup_refusals_say_why_and_leave_nothing(live: Live, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    full = tmp_path / "full"
    (full / "old").mkdir(parents=True)
    cases = {
        a_file / "backup": f"cannot back up to {a_file / 'backup'}: a file stands where a folder must be",
        full: f"{full} is not empty; name a new folder: a backup never overwrites anything",
        live.data_dir / "backups": f"{live.data_dir / 'backups'} is inside the data dir",
    }
    for dest, says in cases.items():
        result = collab("backup", str(dest), data_dir=live.data_dir)
        assert result.returncode == 1, dest
        assert result.stderr.startswith(f"collab: {says}") and result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "full"]
    assert os.listdir(full) == ["old"] and not (live.data_dir / "backups").exists()
    empty = collab("backup", str(tmp_path / "b"), data_dir=tmp_path / "no-data")
    assert empty.returncode == 1
    assert (
        empty.stderr
        == f"collab: {tmp_path / 'no-data'} holds no database (collab.sqlite3): nothing to back up\n"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_backup_to_a_folder_that_may_not_be_written_says_so(live: Live, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        result = collab("backup", str(locked / "backup"), data_dir=live.data_dir)
    finally:
        locked.chmod(0o700)
    assert result.returncode == 1
    assert result.stderr.startswith(f"collab: cannot back up to {locked / 'backup'}: permission denied")
    assert os.listdir(locked) == []


def test_a_backup_is_readable_by_its_owner_only(backup: Path) -> None:
    """It holds patient identifiers and the key that signs sign-ins: no other account on the
    machine may read any of it, whatever the umask of whoever took it."""
    entries = [backup, *backup.rglob("*")]
    assert any(p.name == "collab.sqlite3" for p in entries) and any(p.name == "secret.key" for p in entries)
    opened = [p.relative_to(backup).as_posix() or "." for p in entries if p.stat().st_mode & 0o077]
    assert opened == []
