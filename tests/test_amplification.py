"""What one participant can make the server do: answers to sync step 1 are bounded and shared,
a change to a long discussion costs what it touches, and `outcome` and `meta` stay small.
Real servers and sockets, except where the work itself is counted on a room in this process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, YMessageType, YSyncMessageType, write_var_uint

from collab.sync.catchup import PULL_BURST_BYTES, SYNC_REQUEST_BURST
from collab.sync.protocol import Frame, parse
from collab.sync.room import MAX_ROOT_BYTES, Rejected, Room
from tests.conftest import Server, connect_db, room_people
from tests.yclient import YClient

# Sync step 1 with an empty state vector: "send me everything" (4 bytes).
STEP1_EMPTY = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP1]) + write_var_uint(1) + b"\x00"
FLOOD = 40


def _discussion(count: int, authors: list[int], client_id: int = 7) -> bytes:
    """A discussion of ``count`` messages by ``authors`` in turn, as one update."""
    doc: Doc[Any] = Doc(client_id=client_id)
    doc["discussion"] = Array(
        [
            Map(
                {
                    "id": f"m{n}",
                    "author": str(authors[n % len(authors)]),
                    "authorName": "Dr Someone",
                    "text": f"message {n}: " + "words " * 20,
                    "created": "2026-11-29T10:00:00Z",
                }
            )
            for n in range(count)
        ]
    )
    return doc.get_update()


def _message(author: int, text: str, message_id: str) -> Map[Any]:
    return Map({"id": message_id, "author": str(author), "text": text, "created": "2026-11-29T10:00:00Z"})


@pytest.fixture
def people(server: Server) -> Iterator[tuple[Server, str, dict[str, str], dict[str, int]]]:
    """Case S26-1 with a pathologist (moderates), a trainee (contributes) and a clinician (reads)."""
    data_dir = server.data_dir
    case_id, tokens, ids = room_people(data_dir)
    yield server, case_id, tokens, ids


def _seeded(data_dir: Path, case_id: str, update: bytes) -> None:
    """Store a document update for the case before any room is loaded (the server reads it on join)."""
    with connect_db(data_dir) as db:
        db.execute("INSERT INTO doc_updates (case_id, update_data) VALUES (?, ?)", (case_id, update))


def _url(server: Server, case_id: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"


def _answers(client: YClient) -> list[bytes]:
    """The sync step 2 frames the client received."""
    return [
        data
        for data in client.frames
        if (frame := parse(data)).kind == YMessageType.SYNC and frame.sync_kind == YSyncMessageType.SYNC_STEP2
    ]


async def _closed(client: YClient, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        await client.closed.wait()


async def _either(*waits: Coroutine[Any, Any, Any], timeout: float = 30.0) -> None:
    """Wait until the first of ``waits`` is done (the others are cancelled)."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


# ---------------------------------------------------------------------------------------------
# Sync step 1


def test_a_flood_of_sync_requests_is_cut_off_while_the_room_carries_on(people) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = people
    _seeded(server.data_dir, case_id, _discussion(3000, [ids["north.path"]]))

    async def scenario() -> None:
        presenter = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        follower = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        reader = await YClient(_url(server, case_id), tokens["north.onc"]).connect()  # read-only
        for client in (presenter, follower, reader):
            await client.synced.wait()
        whole = len(_answers(reader)[0])
        for _ in range(FLOOD):  # 4 bytes each, asking for the whole document every time
            await reader.send_raw(STEP1_EMPTY)
        # Meanwhile the room and the site carry on.
        await presenter.set_awareness({"pointer": {"slide": "s1", "x": 1, "y": 2}})
        await follower.wait_for(lambda: presenter.doc.client_id in follower.awareness)
        health = await asyncio.to_thread(server.get, "/healthz")
        assert health.status_code == 200
        await reader.wait_for(lambda: reader.closed.is_set() or len(_answers(reader)) > FLOOD, timeout=60)
        answered = len(_answers(reader)) - 1  # the first came with the connection
        pulled = sum(map(len, _answers(reader)))
        print(f"flood of {FLOOD}: {answered} answered, {pulled} bytes pulled, closed {reader.close_code}")
        assert (reader.close_code, "too many sync requests" in reader.close_reason) == (4429, True), (
            f"{answered} of {FLOOD} requests answered, {pulled} bytes for a {whole}-byte document",
            reader.close_code,
        )
        # The burst, and at most one more had ten seconds passed while it was sent.
        assert answered <= SYNC_REQUEST_BURST, answered
        assert pulled <= (SYNC_REQUEST_BURST + 1) * whole
        assert not presenter.closed.is_set() and not follower.closed.is_set()
        await presenter.set_awareness({"pointer": {"slide": "s1", "x": 3, "y": 4}})
        await follower.wait_for(lambda: follower.awareness[presenter.doc.client_id]["pointer"]["x"] == 3)
        for client in (presenter, follower):
            await client.close()

    asyncio.run(scenario())


class _Peer:
    """A connection as a room sees it, without a socket: what it was sent is kept."""

    def __init__(self, user_id: int, *, contribute: bool = True, moderate: bool = False) -> None:
        self.user_id = user_id
        self.contribute = contribute
        self.discuss = contribute
        self.moderate = moderate
        self.chairs = False
        self.identity: dict[str, Any] = {"id": user_id, "name": f"user {user_id}"}
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def _calls(work: Callable[[], None], of: Callable[..., Any] | None = None) -> int:
    """How many Python and C functions ``work`` called (only calls of ``of``, if given): the
    amount of work, counted, not timed."""
    count = 0
    code = getattr(of, "__code__", None)

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if code is None:
            count += event in ("call", "c_call")
        elif event == "call" and frame.f_code is code:
            count += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def test_newcomers_at_the_same_time_are_answered_from_one_encoding() -> None:
    room = Room("case", [_discussion(500, [1])], lambda case_id, update: None)
    newcomers = [_Peer(n, contribute=False) for n in range(2, 12)]
    step1 = Frame(YMessageType.SYNC, YSyncMessageType.SYNC_STEP1, b"\x00")

    def join_all() -> None:
        for peer in newcomers:
            room.join(peer)
            room.receive(peer, step1)

    encodings = _calls(join_all, of=Doc.get_update)
    answers = {peer.sent[-1] for peer in newcomers}
    assert len(answers) == 1 and len(next(iter(answers))) > 500 * 100
    assert encodings == 1, f"{encodings} encodings of the whole document for {len(newcomers)} newcomers"
    # A change makes the next answer new, and it holds the change.
    author = _Peer(1)
    post = Doc(client_id=99)
    post.apply_update(room.doc.get_update())
    since = post.get_state()
    post.get("discussion", type=Array).append(_message(1, "new", "fresh"))
    room.receive(author, Frame(YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE, post.get_update(since)))
    late = _Peer(20, contribute=False)
    room.join(late)
    room.receive(late, step1)
    check: Doc[Any] = Doc()
    check.apply_update(parse(late.sent[-1]).payload)
    assert len(check.get("discussion", type=Array)) == 501


def test_one_person_reconnecting_to_ask_again_is_bounded_in_bytes() -> None:
    """A new connection may always ask once: what one person's connections pull together is
    bounded. Reconnecting after every close, a flood pulled 4.6 GiB in 10 s from a 5 MiB case."""
    room = Room("case", [_discussion(4000, [1])], lambda case_id, update: None)
    step1 = Frame(YMessageType.SYNC, YSyncMessageType.SYNC_STEP1, b"\x00")
    pulled, connections, refused = 0, 0, None
    while refused is None and connections < 400:
        connections += 1
        peer = _Peer(5, contribute=False)
        room.join(peer)
        try:
            room.receive(peer, step1)
            pulled += len(peer.sent[-1])
        except Rejected as exc:
            refused = exc
        room.leave(peer)
    whole = len(room.doc.get_update())
    print(f"one person, {connections} connections: {pulled >> 20} MiB pulled of a {whole >> 10} KiB document")
    assert refused is not None and refused.code == 4429, f"{pulled >> 20} MiB over {connections} connections"
    # The burst and one document more, and what trickled in meanwhile (a second's worth per
    # second: generous, without timing anything).
    assert pulled <= 2 * PULL_BURST_BYTES, pulled
    other = _Peer(6, contribute=False)  # someone else is not held up by it
    room.join(other)
    room.receive(other, step1)
    assert len(other.sent[-1]) > whole


# ---------------------------------------------------------------------------------------------
# A long discussion


def _room_with(count: int) -> tuple[Room, Doc[Any]]:
    """A room whose discussion holds ``count`` messages by users 1 and 2, and a copy of it."""
    update = _discussion(count, [1, 2])
    room = Room("case", [update], lambda case_id, update: None)
    copy: Doc[Any] = Doc(client_id=1234)
    copy.apply_update(update)
    return room, copy


def _update(doc: Doc[Any], change: Callable[[Array[Any]], None]) -> Frame:
    """Make ``change`` on ``doc``'s discussion; the update frame that carries it."""
    since = doc.get_state()
    change(doc.get("discussion", type=Array))
    return Frame(YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE, doc.get_update(since))


def _sent(room: Room, peer: _Peer, doc: Doc[Any], change: Callable[[Array[Any]], None]) -> None:
    """Make ``change`` on ``doc``'s discussion and send it to the room as ``peer``."""
    room.receive(peer, _update(doc, change))


def _edit(index: int, key: str, value: str) -> Callable[[Array[Any]], None]:
    return lambda messages: messages[index].__setitem__(key, value)


def _edits(indices: range) -> Callable[[Array[Any]], None]:
    def edit(messages: Array[Any]) -> None:
        for index in indices:
            messages[index]["text"] = "edited"

    return edit


def test_a_change_costs_the_same_in_a_short_and_a_long_discussion() -> None:
    work: dict[str, dict[int, int]] = {}
    for count in (1000, 8000):
        room, copy = _room_with(count)
        author = _Peer(1)  # wrote the messages at even places
        # The first change after loading makes the room's trial copy: that is paid once.
        _sent(room, author, copy, lambda messages: messages.append(_message(1, "first", "x1")))
        for name, change in [
            ("a post", lambda messages: messages.append(_message(1, "next", "x2"))),
            ("an edit", _edit(count - 2, "text", "corrected")),
            ("25 edits", _edits(range(count - 52, count - 2, 2))),
            ("a deletion", lambda messages, at=count - 4: messages.__delitem__(at)),
        ]:
            frame = _update(copy, change)
            work.setdefault(name, {})[count] = _calls(lambda r=room, a=author, f=frame: r.receive(a, f))
        messages = room.doc.get("discussion", type=Array)
        assert len(messages) == count + 1 and messages[count - 3]["text"] == "corrected"
    print(f"function calls per change, by messages in the discussion: {work}")
    for name, calls in work.items():
        assert calls[8000] <= calls[1000] + 20, (name, calls)


def test_edits_and_deletions_in_a_long_discussion_are_judged_as_before() -> None:
    room, copy = _room_with(8000)
    author, other = _Peer(1), _Peer(2)
    last = 7998  # by user 1 (even places)
    _sent(room, author, copy, _edit(last, "text", "corrected"))
    assert room.doc.get("discussion", type=Array)[last]["text"] == "corrected"
    for change, why in [
        (_edit(last, "text", "mine now"), "only the author"),  # another's message
        (_edit(last, "author", "2"), "only the author"),
        (lambda messages: messages.__delitem__(last), "only the author"),
        (_edits(range(7000, 7010)), "only the author"),  # theirs and one's own
        (lambda messages: messages.append(_message(1, "in their name", "x9")), "its author's own id"),
    ]:
        forged: Doc[Any] = Doc(client_id=555)
        forged.apply_update(room.doc.get_update())
        with pytest.raises(Rejected) as refused:
            _sent(room, other, forged, change)
        assert refused.value.code == 4403 and why in refused.value.reason, refused.value
    assert room.doc.get("discussion", type=Array)[last]["text"] == "corrected"
    # Taken out and put back as it was is no change; changed on the way, it is one.
    again: Doc[Any] = Doc(client_id=557)
    again.apply_update(room.doc.get_update())

    def put_back(messages: Array[Any], at: int = last, text: str = "corrected") -> None:
        value = {"id": f"m{at}", "author": "1", "authorName": "Dr Someone", "text": text}
        value["created"] = "2026-11-29T10:00:00Z"
        del messages[at]
        messages.insert(at, Map(value))

    _sent(room, other, again, put_back)
    with pytest.raises(Rejected) as refused:
        _sent(room, other, again, lambda messages: put_back(messages, text="changed"))
    assert "only the author" in refused.value.reason
    # A moderator may correct anyone's message, but not its author.
    moderator = _Peer(3, moderate=True)
    mod_doc: Doc[Any] = Doc(client_id=556)
    mod_doc.apply_update(room.doc.get_update())
    _sent(room, moderator, mod_doc, _edit(last, "text", "moderated"))
    assert room.doc.get("discussion", type=Array)[last]["text"] == "moderated"
    with pytest.raises(Rejected) as refused:
        _sent(room, moderator, mod_doc, _edit(last, "author", "3"))
    assert "author cannot change" in refused.value.reason


def test_a_long_discussion_takes_posts_and_refuses_forgeries(people) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, ids = people
    consultant_id, trainee_id = ids["north.path"], ids["north.trainee"]
    _seeded(server.data_dir, case_id, _discussion(10_000, [consultant_id, trainee_id]))

    async def scenario() -> None:
        consultant = await YClient(_url(server, case_id), tokens["north.path"]).connect()
        trainee = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
        for client in (consultant, trainee):
            await client.synced.wait()
        messages = trainee.doc.get("discussion", type=Array)
        assert len(messages) == 10_000
        messages.append(_message(trainee_id, "Is this DCIS?", "q1"))
        await consultant.wait_for(lambda: len(consultant.doc.get("discussion", type=Array)) == 10_001)
        messages[9_999]["text"] = "my own words, edited"  # the trainee's (odd positions)
        await consultant.wait_for(
            lambda: consultant.doc.get("discussion", type=Array)[9_999]["text"] == "my own words, edited"
        )
        messages[9_998]["text"] = "the consultant's, forged"
        await _closed(trainee)
        assert trainee.close_code == 4403, trainee.close_reason
        late = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
        await late.synced.wait()
        seen = late.doc.get("discussion", type=Array)
        assert len(seen) == 10_001 and seen[9_998]["text"].startswith("message 9998")
        for client in (consultant, late):
            await client.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# outcome and meta


def test_outcome_and_meta_are_refused_past_their_bound(people) -> None:  # type: ignore[no-untyped-def]
    server, case_id, tokens, _ = people

    async def scenario() -> None:
        watcher = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
        await watcher.synced.wait()
        for root in ("outcome", "meta"):
            writer = await YClient(_url(server, case_id), tokens["north.trainee"]).connect()
            await writer.synced.wait()
            shared = writer.doc.get(root, type=Map)
            shared["small"] = "fine"
            await watcher.wait_for(lambda r=root: watcher.doc.get(r, type=Map).get("small") == "fine")
            # Grown a piece at a time: each piece is small, the whole is not.
            piece = MAX_ROOT_BYTES // 4
            for n in range(5):
                shared[f"piece{n}"] = "x" * piece
            await _either(
                writer.closed.wait(),
                watcher.wait_for(lambda r=root: "piece4" in watcher.doc.get(r, type=Map)),
            )
            assert writer.close_code == 4413 and root in writer.close_reason, (
                writer.close_code,
                writer.close_reason,
            )
            late = await YClient(_url(server, case_id), tokens["north.onc"]).connect()
            await late.synced.wait()
            size = len(str(late.doc.get(root, type=Map)))
            assert size <= MAX_ROOT_BYTES, size
            await late.close()
        await watcher.close()

    asyncio.run(scenario())
