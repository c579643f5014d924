"""The one writer of document updates: a row that can never be stored holds up nothing else.

A batch holds every case's updates, Yjs client owners and presenter path samples of one
window. The disk refusing a batch (locked, full) is tested in tests/test_resilience.py; here,
rows that no retry will ever store, sent by hostile participants or built by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from collab.store.database import Database
from collab.sync.protocol import QUERY_AWARENESS, AwarenessEntry, encode_awareness
from collab.sync.rooms import Rooms
from tests.conftest import add_user, api_token, collab, connect_file, db_url, start_server, stop_server
from tests.yclient import YClient, point_annotation

GOOD_VIEW = {"slide": "3f2a9c0d1e2b4a5c", "x": 1000.0, "y": 2000.0, "width": 4000.0, "rotation": 90}


def _view(**change: object) -> dict[str, object]:
    return {**GOOD_VIEW, **change}


def _presenting(view: dict[str, object]) -> str:
    return json.dumps({"user": {"id": 2, "name": "Dr Reid"}, "view": view, "presenting": True})


# Awareness states (JSON text as sent) that must never reach the disk, nor stop it.
POISON = {
    "lone surrogate in the slide id": _presenting(_view(slide="\ud800")),
    "lone surrogate elsewhere": json.dumps({"user": {"id": 2, "name": "Dr \udfff"}, "presenting": False}),
    "lone surrogate in a key": json.dumps({"view\udc00": 1, "presenting": True}),
    "integer past any float": _presenting(_view()).replace('"x": 1000.0', '"x": 1' + "0" * 400),
    "finite float out of range": _presenting(_view(x=1e308, width=-1e300)),
    "very long slide id": _presenting(_view(slide="s" * 10_000)),
    "slide id with control characters": _presenting(_view(slide="s1\x00\n<b>")),
    "empty slide id": _presenting(_view(slide="")),
    "boolean for a number": _presenting(_view(rotation=True)),
}


def _ws(url: str, case_id: str) -> str:
    return url.replace("http://", "ws://") + f"/ws/cases/{case_id}"


def _ids(database: Path) -> dict[str, Any]:
    with connect_file(database) as db:
        cases = dict(db.execute("SELECT accession, id FROM cases").fetchall())
        users = dict(db.execute("SELECT username, id FROM users").fetchall())
    return {**cases, **users}


def _stored(database: Path, case_id: str) -> tuple[list[bytes], set[str]]:
    """A case's committed update rows and the annotations they rebuild (read from the file)."""
    with connect_file(database) as db:
        found = db.execute("SELECT update_data FROM doc_updates WHERE case_id = ? ORDER BY id", (case_id,))
        rows = [bytes(r[0]) for r in found]
    doc: Doc[Any] = Doc()
    for row in rows:
        doc.apply_update(row)
    return rows, set(doc.get("annotations", type=Map).keys())


def _path(database: Path, case_id: str) -> list[tuple[Any, ...]]:
    with connect_file(database) as db:
        return db.execute(
            "SELECT user_id, slide, x, y, width, rotation FROM presenter_path WHERE case_id = ? ORDER BY id",
            (case_id,),
        ).fetchall()


def _wait_for_committed(database: Path, case_id: str, want: set[str], timeout_s: float = 15) -> None:
    """Until every annotation in ``want`` is committed (polled: another process writes the file)."""
    deadline = time.monotonic() + timeout_s
    while not want <= (have := _stored(database, case_id)[1]):
        assert time.monotonic() < deadline, f"never committed: {sorted(want - have)}"
        time.sleep(0.05)  # the poll interval


def _assert_once_each(database: Path, case_id: str, want: set[str]) -> None:
    rows, annotations = _stored(database, case_id)
    assert annotations == want, f"lost: {sorted(want - annotations)}"
    assert len(rows) == len(set(rows)), f"{len(rows) - len(set(rows))} duplicate update rows"
    assert len(rows) == len(want), f"{len(rows)} update rows for {len(want)} annotations"


def _adding(label: str, author: int) -> Callable[[Doc[Any]], None]:
    """A change the server makes itself (Room.change): one annotation by ``author``."""

    def make(doc: Doc[Any]) -> None:
        doc.get("annotations", type=Map)[label] = point_annotation(author, label)

    return make


async def _round_trip(client: YClient) -> bool:
    """Query awareness and wait for the answer: the server has handled all we sent before.
    False if the connection closed instead."""
    before = len(client.frames)
    await client.send_raw(bytes([QUERY_AWARENESS]))
    await client.wait_for(lambda: client.closed.is_set() or len(client.frames) > before, timeout=15)
    return not client.closed.is_set()


def test_poisoned_presenter_views_hold_up_no_other_case(data_dir: Path, case: str) -> None:
    """A read-only participant of one case, and one who may present there, send presenting
    views no disk can store (or no viewer should read) while a pathologist annotates another
    case: that case's annotations are committed once each, during the session and at a clean
    stop, and no such view is kept."""
    assert collab("cases", "add", "S26-2", "--org", "North Trust", data_dir=data_dir).returncode == 0
    add_user(data_dir, "north.onc", "clinician", "North Trust")
    add_user(data_dir, "north.trainee", "trainee", "North Trust")
    database = data_dir / "collab.sqlite3"
    ids = _ids(database)
    poisoned, other = ids["S26-1"], ids["S26-2"]
    senders = {
        "read-only": api_token(data_dir, "north.onc"),
        "presenter": api_token(data_dir, "north.trainee"),
    }
    writer_token = api_token(data_dir, "north.path")
    server = start_server(data_dir)
    stopped = False
    try:

        async def annotate(writer: YClient, watcher: YClient, labels: list[str]) -> None:
            for label in labels:
                writer.annotations()[label] = point_annotation(ids["north.path"], label)
            # Once the other participant has them, the server has queued them for the disk.
            await watcher.wait_for(lambda: set(labels) <= set(watcher.annotations().keys()))

        async def scenario() -> set[str]:
            writer = await YClient(_ws(server.url, other), writer_token).connect()
            watcher = await YClient(_ws(server.url, other), writer_token).connect()
            await asyncio.gather(writer.synced.wait(), watcher.synced.wait())
            made: list[str] = []
            outcomes = {}
            for n, (name, state) in enumerate(POISON.items()):
                for who, token in senders.items():
                    sender = await YClient(_ws(server.url, poisoned), token).connect()
                    await sender.synced.wait()
                    await sender.send_raw(encode_awareness([AwarenessEntry(sender.doc.client_id, 1, state)]))
                    alive = await _round_trip(sender)
                    outcomes[name, who] = "kept open" if alive else sender.close_code
                    if not alive:
                        assert sender.close_code == 1007, (name, who, sender.close_code, sender.close_reason)
                    made.append(f"during-{n}-{who}")
                    await annotate(writer, watcher, made[-1:])
                    await sender.close()
            # A well-formed presenting view is still kept (if its sender may present).
            for token in senders.values():
                sender = await YClient(_ws(server.url, poisoned), token).connect()
                await sender.synced.wait()
                await sender.set_awareness(json.loads(_presenting(GOOD_VIEW)))
                assert await _round_trip(sender)
                await sender.close()
            print("\npoison outcomes:", outcomes)
            await asyncio.to_thread(_wait_for_committed, database, other, set(made))
            _assert_once_each(database, other, set(made))
            # Then a burst queued just before a clean stop.
            last = [f"before-stop-{n}" for n in range(20)]
            await annotate(writer, watcher, last)
            return set(made + last)

        want = asyncio.run(scenario())
        stop_server(server)  # SIGTERM: the server saves what it holds, then exits
        stopped = True
        _assert_once_each(database, other, want)
        path = _path(database, poisoned)
        good = [
            (ids[who], GOOD_VIEW["slide"], 1000.0, 2000.0, 4000.0, 90.0)
            for who in ("north.trainee", "north.onc")
        ]
        assert good[0] in path and set(path) <= set(good), path
        log = (data_dir / "server.log").read_text(errors="replace")
        assert "could not save document updates" not in log
        assert "Traceback" not in log, log[-3000:]
    finally:
        if not stopped:
            stop_server(server)


def test_an_unstorable_row_is_dropped_alone_and_the_rest_lands_once(
    data_dir: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows built past every check (only the writer's own callers could make them): each is
    dropped and logged, the rows of its batch land once, and the next batch is written."""
    add_user(data_dir, "north.onc", "clinician", "North Trust")
    database = data_dir / "collab.sqlite3"
    ids = _ids(database)
    case_id, path_id, onc_id = ids["S26-1"], ids["north.path"], ids["north.onc"]

    def add(label: str) -> Callable[[Doc[Any]], None]:
        return _adding(label, path_id)

    async def scenario() -> None:
        async with Database(database, db_url()) as db, Rooms(db.documents) as rooms:
            room = await rooms.join(case_id)
            assert room.path is not None
            room.change(add("first"))
            room.path.observe(path_id, _view())  # each user's first view is saved at once
            room.path.observe(onc_id, _view(slide="\ud800"))  # text SQLite cannot encode
            room.path.observe(2**70, _view())  # past SQLite's INTEGER
            room.path.observe(999_999, _view())  # nobody: the foreign key refuses it
            room.change(add("second"))
            with caplog.at_level(logging.ERROR, logger="collab.sync"):
                await rooms.flush()
            assert not db.conn.in_transaction, "a transaction was left open"
            dropped = [r for r in caplog.records if r.levelno >= logging.ERROR]
            print("\nlogged:", [r.getMessage() for r in dropped])
            assert len(dropped) == 3, [r.getMessage() for r in dropped]
            assert all("presenter path sample" in r.getMessage() for r in dropped)
            assert all(case_id in r.getMessage() for r in dropped)
            assert not any("\ud800" in r.getMessage() or "3f2a9c0d" in r.getMessage() for r in dropped)
            _assert_once_each(database, case_id, {"first", "second"})
            assert _path(database, case_id) == [(path_id, GOOD_VIEW["slide"], 1000.0, 2000.0, 4000.0, 90.0)]
            # The bad rows are gone for good: the next batch is written as usual, once.
            caplog.clear()
            room.change(add("third"))
            with caplog.at_level(logging.ERROR, logger="collab.sync"):
                await rooms.flush()
            assert not caplog.records
            _assert_once_each(database, case_id, {"first", "second", "third"})

    asyncio.run(scenario())
    _assert_once_each(database, case_id, {"first", "second", "third"})


def test_a_write_cut_short_by_shutdown_lands_once(data_dir: Path, case: str) -> None:
    """A flush cancelled while its write is under way (the server stopping, a handler
    cancelled) neither loses the batch nor writes it twice at shutdown."""
    database = data_dir / "collab.sqlite3"
    ids = _ids(database)
    case_id, path_id = ids["S26-1"], ids["north.path"]

    async def scenario() -> None:
        async with Database(database, db_url()) as db, Rooms(db.documents) as rooms:
            room = await rooms.join(case_id)
            room.change(_adding("only", path_id))
            flushing = asyncio.create_task(rooms.flush())
            await asyncio.sleep(0)  # one step: the flush hands its write to the database thread
            flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushing

    asyncio.run(scenario())
    _assert_once_each(database, case_id, {"only"})
