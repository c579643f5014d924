"""The shared document over real websockets, with real pycrdt clients against a real server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Array, Doc, Map

from collab.sync.protocol import AwarenessEntry, encode_awareness
from tests.conftest import (
    Server,
    add_user,
    api_token,
    collab,
    connect_db,
    room_people,
    start_server,
    stop_server,
)
from tests.yclient import YClient, point_annotation


@pytest.fixture
def room(server: Server) -> Iterator[tuple[Server, str, dict[str, str], dict[str, int]]]:
    """Case S26-1 and people with different rights on it; yields the server, the case id, tokens, user ids."""
    data_dir = server.data_dir
    collab("orgs", "add", "South Trust", data_dir=data_dir)
    add_user(data_dir, "south.path", "pathologist", "South Trust")
    case_id, tokens, ids = room_people(data_dir, also=("south.path",))
    yield server, case_id, tokens, ids


def _url(server: Server, case_id: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"


async def _closed(client: YClient, timeout: float = 15.0) -> None:
    """Wait for the server to close this client's connection (a hang here is a failure)."""
    async with asyncio.timeout(timeout):
        await client.closed.wait()


def _stored_updates(server: Server, case_id: str) -> int:
    with connect_db(server.data_dir) as db:
        return int(db.execute("SELECT count(*) FROM doc_updates WHERE case_id = ?", (case_id,)).fetchone()[0])


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll something outside the protocol (the database file) until it holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def test_two_people_converge_and_late_joiners_catch_up(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = room

    async def scenario() -> None:
        a = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        b = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await a.synced.wait()
        await b.synced.wait()
        a.annotations()["a1"] = point_annotation(ids["north.path"], "mitosis — ünïcødé")
        await b.wait_for(lambda: "a1" in b.annotations())
        assert b.annotations()["a1"]["label"] == "mitosis — ünïcødé"
        b.annotations()["b1"] = point_annotation(ids["north.trainee"], "trainee's note")
        await a.wait_for(lambda: "b1" in a.annotations())
        late = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
        await late.wait_for(lambda: {"a1", "b1"} <= set(late.annotations().keys()))
        for client in (a, b, late):
            await client.close()

    asyncio.run(scenario())


def test_awareness_reaches_joiners_and_leaves_with_its_owner(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, _ = room

    async def scenario() -> None:
        a = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await a.set_awareness({"user": {"name": "Dr North"}, "pointer": {"slide": "s1", "x": 100, "y": 200}})
        b = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
        await b.wait_for(lambda: a.doc.client_id in b.awareness)
        assert b.awareness[a.doc.client_id]["pointer"] == {"slide": "s1", "x": 100, "y": 200}
        await a.close()  # the tab is closed: the pointer goes at once, not after a timeout
        await b.wait_for(lambda: a.doc.client_id not in b.awareness)
        await b.close()

    asyncio.run(scenario())


def test_read_only_participants_cannot_change_the_document(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = room

    async def scenario() -> None:
        watcher = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        reader = await YClient(_url(server, case_id), tokens["north.onc"]).connect()  # clinician: read-only
        await reader.synced.wait()
        await reader.set_awareness({"user": {"name": "Dr Onc"}})  # awareness is allowed
        await watcher.wait_for(lambda: reader.doc.client_id in watcher.awareness)
        reader.annotations()["x"] = point_annotation(ids["north.onc"], "not allowed")
        await _closed(reader)
        assert reader.close_code == 4403
        # Nothing was applied, broadcast or stored; the room goes on.
        watcher.annotations()["ok"] = point_annotation(ids["north.path"], "fine")
        other = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await other.wait_for(lambda: "ok" in other.annotations())
        assert "x" not in other.annotations() and "x" not in watcher.annotations()
        for client in (watcher, other):
            await client.close()

    asyncio.run(scenario())


def _message(author: int, text: str) -> Map[Any]:
    return Map(
        {
            "id": f"m-{author}-{len(text)}",
            "author": str(author),
            "text": text,
            "created": "2026-12-03T10:00:00Z",
        }
    )


def test_read_only_clinicians_discuss_but_students_and_read_tokens_do_not(room) -> None:  # type: ignore[no-untyped-def]
    """An oncologist at an MDT reads the case and takes part in its discussion; that opens the
    discussion to them, their own messages only, and nothing else of the document."""
    server, case_id, tokens, ids = room
    add_user(server.data_dir, "north.student", "student", "North Trust")
    shared = collab(
        "cases", "share", "S26-1", "--user", "north.student", "--read-only", data_dir=server.data_dir
    )
    assert shared.returncode == 0, shared.stderr
    made = collab("users", "token", "north.onc", "--scope", "read", data_dir=server.data_dir)
    assert made.returncode == 0, made.stderr
    with connect_db(server.data_dir) as db:
        (student_id,) = db.execute("SELECT id FROM users WHERE username = 'north.student'").fetchone()

    async def scenario() -> None:
        watcher = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await watcher.synced.wait()
        watcher.doc.get("discussion", type=Array).append(
            _message(ids["north.path"], "ER positive, HER2 pending")
        )
        onc = await YClient(_url(server, case_id), tokens["north.onc"]).connect()  # clinician: read-only
        await onc.wait_for(lambda: len(onc.doc.get("discussion", type=Array)) == 1)
        onc.doc.get("discussion", type=Array).append(_message(ids["north.onc"], "Fit for neoadjuvant?"))
        await watcher.wait_for(lambda: len(watcher.doc.get("discussion", type=Array)) == 2)
        assert watcher.doc.get("discussion", type=Array)[1]["text"] == "Fit for neoadjuvant?"
        await _until(lambda: _stored_updates(server, case_id) >= 2)

        # Their own message only: another's is not theirs to change.
        onc.doc.get("discussion", type=Array)[0]["text"] = "changed by the oncologist"
        await _closed(onc)
        assert onc.close_code == 4403
        # Nor anything but the discussion: an annotation is refused as before.
        onc2 = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
        await onc2.wait_for(lambda: len(onc2.doc.get("discussion", type=Array)) == 2)
        onc2.annotations()["x"] = point_annotation(ids["north.onc"], "not allowed")
        await _closed(onc2)
        assert onc2.close_code == 4403

        # A student reads the discussion but does not post; nor does a read-only token.
        student_token = api_token(server.data_dir, "north.student")
        # Each posts as themselves, so only the right to discuss can refuse it.
        for token, author in ((student_token, student_id), (made.stdout.strip(), ids["north.onc"])):
            reader = await YClient(_url(server, case_id), token).connect()
            await reader.wait_for(lambda r=reader: len(r.doc.get("discussion", type=Array)) == 2)  # type: ignore[misc]
            reader.doc.get("discussion", type=Array).append(_message(author, "can I ask?"))
            await _closed(reader)
            assert reader.close_code == 4403

        late = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await late.wait_for(lambda: len(late.doc.get("discussion", type=Array)) == 2)
        texts = [m["text"] for m in late.doc.get("discussion", type=Array)]
        assert texts == ["ER positive, HER2 pending", "Fit for neoadjuvant?"]
        assert "x" not in late.annotations()
        for client in (watcher, late):
            await client.close()

    asyncio.run(scenario())


def test_only_authors_or_pathologists_change_an_annotation(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = room

    async def scenario() -> None:
        author = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await author.synced.wait()
        author.annotations()["t1"] = point_annotation(ids["north.trainee"], "trainee's")
        pathologist = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await pathologist.wait_for(lambda: "t1" in pathologist.annotations())
        pathologist.annotations()["t1"]["label"] = "corrected by the consultant"  # moderation is allowed
        await author.wait_for(lambda: author.annotations()["t1"]["label"] == "corrected by the consultant")
        # A trainee may not delete the consultant's annotation, nor post as someone else.
        pathologist.annotations()["p1"] = point_annotation(ids["north.path"], "consultant's")
        await author.wait_for(lambda: "p1" in author.annotations())
        del author.annotations()["p1"]
        await _closed(author)
        assert author.close_code == 4403
        assert "p1" in pathologist.annotations()
        forger = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await forger.synced.wait()
        forger.annotations()["f1"] = point_annotation(ids["north.path"], "forged author")
        await _closed(forger)
        assert forger.close_code == 4403
        await pathologist.close()

    asyncio.run(scenario())


def test_someone_elses_lost_work_is_accepted_back_but_not_a_forgery(room) -> None:  # type: ignore[no-untyped-def]
    """After a crash a participant resends what it had, others' edits included; those are
    vouched for by the Yjs client that made them (announced by its owner's connection)."""
    server, case_id, tokens, ids = room

    async def scenario() -> None:
        consultant = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await consultant.synced.wait()
        await consultant.set_awareness({"user": {"name": "Dr North"}})
        watcher = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
        await watcher.wait_for(lambda: consultant.doc.client_id in watcher.awareness)
        await consultant.close()
        # Drawn but never received by the server (as if lost in a crash); the trainee has a copy.
        consultant.annotations()["lost"] = point_annotation(ids["north.path"], "consultant's, lost")
        copy: Doc = Doc()
        copy.apply_update(consultant.doc.get_update())
        trainee = await YClient(_url(server, case_id), tokens["north.trainee"], doc=copy).connect()
        await watcher.wait_for(lambda: "lost" in watcher.annotations())
        assert not trainee.closed.is_set()
        # A fresh client claiming the consultant's name is still refused.
        forger = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await forger.synced.wait()
        forger.annotations()["forged"] = point_annotation(ids["north.path"], "forged")
        await _closed(forger)
        assert forger.close_code == 4403
        await trainee.close()
        await watcher.close()

    asyncio.run(scenario())


def test_messages_are_posted_in_ones_own_name_and_changed_only_by_their_author(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = room

    def message(author: int, text: str, message_id: str) -> Map:
        return Map({"id": message_id, "author": str(author), "text": text, "created": "2026-11-29T10:00:00Z"})

    async def scenario() -> None:
        trainee = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        consultant = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await trainee.synced.wait()
        await consultant.synced.wait()
        trainee.doc.get("discussion", type=Array).append(message(ids["north.trainee"], "Is this DCIS?", "m1"))
        consultant.doc.get("discussion", type=Array).append(
            message(ids["north.path"], "Yes — high grade.", "m2")
        )
        await trainee.wait_for(lambda: len(trainee.doc.get("discussion", type=Array)) == 2)
        # Rewriting the consultant's message closes the trainee's connection; the message stands.
        messages = trainee.doc.get("discussion", type=Array)
        theirs = next(n for n, m in enumerate(messages.to_py() or []) if m["id"] == "m2")
        messages[theirs]["text"] = "No."
        await _closed(trainee)
        assert trainee.close_code == 4403
        forger = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await forger.synced.wait()
        forger.doc.get("discussion", type=Array).append(message(ids["north.path"], "forged", "m3"))
        await _closed(forger)
        assert forger.close_code == 4403
        late = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
        await late.wait_for(lambda: len(late.doc.get("discussion", type=Array)) == 2)
        texts = [m["text"] for m in late.doc.get("discussion", type=Array).to_py()]
        assert texts in (["Is this DCIS?", "Yes — high grade."], ["Yes — high grade.", "Is this DCIS?"])
        await consultant.close()
        await late.close()

    asyncio.run(scenario())


def test_messages_posted_at_the_same_instant_are_both_kept_whatever_their_order(room) -> None:  # type: ignore[no-untyped-def]
    """Messages from other tools may have no id; concurrent posts must not be mistaken for edits."""
    server, case_id, tokens, ids = room

    async def scenario(trainee_client_id: int, consultant_client_id: int) -> list[str]:
        trainee = await YClient(
            _url(server, case_id), tokens["north.trainee"], Doc(client_id=trainee_client_id)
        ).connect()
        consultant = await YClient(
            _url(server, case_id), tokens["north.path"], Doc(client_id=consultant_client_id)
        ).connect()
        await trainee.synced.wait()
        await consultant.synced.wait()
        before = len(trainee.doc.get("discussion", type=Array))
        # Both posts are made before either client reads anything: truly concurrent.
        for client, name in ((trainee, "north.trainee"), (consultant, "north.path")):
            client.doc.get("discussion", type=Array).append(
                Map({"author": str(ids[name]), "text": f"from {name}"})
            )
        for client in (trainee, consultant):
            await client.wait_for(
                lambda c=client: len(c.doc.get("discussion", type=Array)) == before + 2 or c.closed.is_set()
            )
            assert not client.closed.is_set(), client.close_reason
        texts = [m["text"] for m in consultant.doc.get("discussion", type=Array).to_py()]
        await trainee.close()
        await consultant.close()
        return texts

    # Yjs orders concurrent inserts by client id; both orders are tried.
    first = asyncio.run(scenario(1_000, 2_000_000))
    second = asyncio.run(scenario(3_000_000, 2_000))
    assert sorted(first) == ["from north.path", "from north.trainee"]
    assert sorted(second[2:]) == ["from north.path", "from north.trainee"]
    assert first != second[2:]  # the two orders really were both tried


def test_bad_frames_close_only_their_connection(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = room

    async def scenario() -> None:
        bystander = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await bystander.synced.wait()
        for frame, code in [
            (b"\x00\x02\xff\xff\xff\xff\xff", 1007),  # length beyond the frame
            (b"\x09", 1007),  # unknown message type
            (b"\x00\x02\x05\x01\x02\x03\x04\x05", 4400),  # a well-framed update that is not one
            (b"\x01\x05\x01\x01\x01\x01{", 1007),  # awareness that is not JSON
            (b"\x00" + b"\x02" + b"\xff\xff\x7f" + b"x" * (2 * 1024 * 1024), 1009),  # over 1 MiB
        ]:
            bad = await YClient(_url(server, case_id), tokens["north.path"]).connect()
            await bad.synced.wait()
            await bad.send_raw(frame)
            await _closed(bad)
            assert bad.close_code == code, (frame[:8], bad.close_code, bad.close_reason)
        unknown_root = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await unknown_root.synced.wait()
        unknown_root.doc.get("mischief", type=Map)["x"] = 1
        await _closed(unknown_root)
        assert unknown_root.close_code == 4400
        # The bystander and the document are untouched, and the room still works.
        bystander.annotations()["still"] = point_annotation(ids["north.path"], "here")
        late = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await late.wait_for(lambda: "still" in late.annotations())
        assert "mischief" not in set(late.doc.keys())
        await bystander.close()
        await late.close()

    asyncio.run(scenario())


def _pointer(watcher: YClient, of: YClient) -> dict[str, object]:
    return dict(watcher.awareness.get(of.doc.client_id) or {})


def test_a_peer_that_stops_reading_is_dropped_and_holds_up_nobody(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, _ = room

    async def scenario() -> None:
        # A raw client that announces a pointer, then reads nothing more (its receive window fills up).
        stalled = await websockets.connect(
            _url(server, case_id),
            additional_headers={"Authorization": f"Bearer {tokens['north.onc']}"},
            max_queue=1,
        )
        stalled_id = 777
        await stalled.send(encode_awareness([AwarenessEntry(stalled_id, 1, '{"user": {"name": "stalled"}}')]))
        sender = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        watcher = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        await watcher.wait_for(lambda: stalled_id in watcher.awareness)
        # Big pointer states (16 KiB at most) until the server gives up on the stalled link.
        bulk = "x" * 15_000
        n = 0
        async with asyncio.timeout(60):
            while stalled_id in watcher.awareness:
                n += 1
                await sender.set_awareness({"n": n, "bulk": bulk})
                await watcher.wait_for(lambda n=n: _pointer(watcher, sender).get("n") == n)
        assert not watcher.closed.is_set() and not sender.closed.is_set()
        await sender.set_awareness({"n": "after"})
        await watcher.wait_for(lambda: _pointer(watcher, sender).get("n") == "after")
        await stalled.close()
        await sender.close()
        await watcher.close()

    asyncio.run(scenario())


def test_two_people_joining_a_cold_room_at_once_both_sync(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = room

    async def scenario() -> None:
        for attempt in range(15):
            first, second = await asyncio.gather(
                YClient(_url(server, case_id), tokens["north.path"]).connect(),
                YClient(_url(server, case_id), tokens["north.trainee"]).connect(),
            )
            async with asyncio.timeout(10):
                await asyncio.gather(first.synced.wait(), second.synced.wait())
            first.annotations()[f"race{attempt}"] = point_annotation(ids["north.path"], "race")
            key = f"race{attempt}"
            await second.wait_for(lambda key=key, second=second: key in second.annotations())

            await asyncio.gather(first.close(), second.close())

    asyncio.run(scenario())


def test_strangers_are_refused_before_any_document_byte(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, _ = room

    async def scenario() -> None:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {tokens['south.path']}"},
        ):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(_url(server, case_id), additional_headers=headers)
            assert refused.value.response.status_code == 403

    asyncio.run(scenario())


def test_kill_9_loses_nothing_that_was_flushed_and_clients_push_the_rest(data_dir: Path, case: str) -> None:
    add_user(data_dir, "north.trainee", "trainee", "North Trust")
    token = api_token(data_dir, "north.path")
    with connect_db(data_dir) as db:
        case_id = db.execute("SELECT id FROM cases").fetchone()[0]
        author = db.execute("SELECT id FROM users WHERE username = 'north.path'").fetchone()[0]
    server = start_server(data_dir)

    async def before() -> YClient:
        client = await YClient(_url(server, case_id), token).connect()
        await client.synced.wait()
        client.annotations()["saved"] = point_annotation(author, "flushed before the crash")
        await _until(lambda: _stored_updates(server, case_id) >= 1)
        return client

    async def after(kept: YClient) -> None:
        # Drawn while the server was down: kept by the client, pushed when it reconnects.
        kept.annotations()["offline"] = point_annotation(author, "drawn while disconnected")
        again = await YClient(_url(restarted, case_id), token, doc=kept.doc).connect()
        await again.synced.wait()
        fresh = await YClient(_url(restarted, case_id), token).connect()
        await fresh.wait_for(lambda: {"saved", "offline"} <= set(fresh.annotations().keys()))
        await again.close()
        await fresh.close()

    async def run() -> None:
        nonlocal restarted
        kept = await before()
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        await _closed(kept)
        restarted = start_server(data_dir)
        await after(kept)

    restarted = server
    try:
        asyncio.run(run())
    finally:
        stop_server(server)
        if restarted is not server:
            stop_server(restarted)


def test_node_and_python_clients_converge(room) -> None:  # type: ignore[no-untyped-def]
    """npm yjs + y-websocket (as in the browser) and pycrdt, in one room."""
    import json
    import shutil
    import subprocess

    from pycrdt import Array

    from tests.conftest import REPO

    if shutil.which("node") is None or not (REPO / "node_modules" / "y-websocket").exists():
        pytest.skip("node and the npm packages (scripts/setup) are needed")
    server, case_id, tokens, ids = room
    ws_base = server.url.replace("http://", "ws://") + "/ws/cases"

    def node(token: str, scenario: dict[str, object]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                "node",
                str(REPO / "tests" / "node" / "yclient.mjs"),
                ws_base,
                case_id,
                token,
                json.dumps(scenario),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    expect = {"expect_annotations": ["n1", "n2", "p1"], "expect_messages": 3, "expect_peers": 2}
    first = node(
        tokens["north.path"],
        {
            "author": ids["north.path"],
            "awareness": {"user": {"name": "Node A"}, "tag": "Node A"},
            "annotations": {
                "n1": {"kind": "point", "label": "Zellkern — 核", "author": str(ids["north.path"])}
            },
            "messages": ["Ki-67 looks high — ✓"],
            **expect,
        },
    )
    second = node(
        tokens["north.trainee"],
        {
            "author": ids["north.trainee"],
            "awareness": {"user": {"name": "Node B"}, "tag": "Node B"},
            "annotations": {"n2": {"kind": "rect", "label": "stroma", "author": str(ids["north.trainee"])}},
            "messages": ["agreed"],
            **expect,
        },
    )

    async def python_side() -> YClient:
        client = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        await client.synced.wait()
        await client.set_awareness({"user": {"name": "Python"}, "tag": "Python"})
        client.annotations()["p1"] = point_annotation(ids["north.path"], "from Python — é")
        client.doc.get("discussion", type=Array).append(
            Map({"text": "from Python", "author": str(ids["north.path"])})
        )
        await client.wait_for(
            lambda: (
                {"n1", "n2"} <= set(client.annotations().keys())
                and len(client.doc.get("discussion", type=Array)) == 3
                # Seen at some point: a Node client that has everything leaves, taking its pointer.
                and {"Node A", "Node B"} <= {s.get("tag") for s in client.seen.values()}
            ),
            timeout=20,
        )
        return client

    client = asyncio.run(_with_close(python_side()))
    outputs = []
    for process in (first, second):
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err + out
        outputs.append(json.loads(out))
    python_labels = {k: v["label"] for k, v in client.annotations().to_py().items()}
    for output in outputs:
        assert {k: v["label"] for k, v in output["annotations"].items()} == python_labels
        assert sorted(output["messages"]) == sorted(["Ki-67 looks high — ✓", "agreed", "from Python"])
        assert {"Python"} <= {peer.get("tag") for peer in output["peers"]}
        # Named by the server as who they are, whatever they called themselves.
        assert {peer["user"]["id"] for peer in output["peers"]} <= {ids["north.path"], ids["north.trainee"]}
    assert python_labels["n1"] == "Zellkern — 核"
    assert {s["tag"] for s in client.seen.values()} >= {"Node A", "Node B"}


async def _with_close(running):  # type: ignore[no-untyped-def]
    client = await running
    await client.close()
    return client


def test_a_read_only_token_reads_the_room_but_cannot_write_to_it(room) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = room
    made = collab("users", "token", "north.path", "--scope", "read", data_dir=server.data_dir)
    assert made.returncode == 0, made.stderr
    read_token = made.stdout.strip()

    async def scenario() -> None:
        writer = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        writer.annotations()["first"] = point_annotation(ids["north.path"], "by the pathologist")
        tool = await YClient(_url(server, case_id), read_token).connect()
        await tool.wait_for(lambda: "first" in tool.annotations())  # it reads
        tool.annotations()["x"] = point_annotation(ids["north.path"], "through a read token")
        await _closed(tool)
        assert tool.close_code == 4403
        assert "x" not in writer.annotations()
        await writer.close()

    asyncio.run(scenario())
