"""Presence in a case room against a real server: nobody poses as someone else, only those who
may present present, client ids keep their owner, and one person's presence is bounded."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, YMessageType, create_sync_message

from collab.sync.protocol import AwarenessEntry, encode_awareness, parse, parse_awareness
from tests.conftest import (
    Server,
    add_user,
    api_token,
    collab,
    connect_db,
    seed_case,
    start_server,
    stop_server,
)
from tests.test_teaching import Classroom, join
from tests.test_teaching import classroom as teaching_classroom  # noqa: F401 (a fixture, by that name)
from tests.yclient import YClient

REPO = Path(__file__).resolve().parent.parent
# One case per test, so that client ids and grants of one test never meet another's.
CASES = ("P-1", "P-2", "P-3", "P-4", "P-5", "P-6", "P-7", "P-8", "P-9", "P-10")
CHAIRED = "P-9"  # on the agenda of an open meeting chaired by the clinician


@dataclass
class World:
    server: Server
    tokens: dict[str, str]
    ids: dict[str, int]
    case_ids: dict[str, str]

    def url(self, accession: str) -> str:
        return self.server.url.replace("http://", "ws://") + f"/ws/cases/{self.case_ids[accession]}"

    async def join(self, accession: str, username: str, doc: Doc[Any] | None = None) -> YClient:
        client = await YClient(self.url(accession), self.tokens[username], doc).connect()
        await client.wait_for(client.synced.is_set)
        return client

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with connect_db(self.server.data_dir) as db:
            return list(db.execute(sql, args).fetchall())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """North's pathologist (contributes), a clinician of North (reads; chairs the meeting of
    ``CHAIRED``) and a student to whom every case is shared read-only."""
    data_dir = tmp_path_factory.mktemp("data")
    seed_case(data_dir)
    add_user(data_dir, "north.onc", "clinician", "North Trust", "--name", "Dr Oncology North")
    add_user(data_dir, "stu", "student", "North Trust", "--name", "Sam Student")
    for accession in CASES:
        assert collab("cases", "add", accession, "--org", "North Trust", data_dir=data_dir).returncode == 0
        shared = collab("cases", "share", accession, "--user", "stu", "--read-only", data_dir=data_dir)
        assert shared.returncode == 0, shared.stderr
    meeting = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2026-12-01T13:00",
        "--chair", "north.onc", "--coordinator", "north.path", "--case", CHAIRED,
        data_dir=data_dir,
    )  # fmt: skip
    assert meeting.returncode == 0, meeting.stderr
    with connect_db(data_dir) as db:
        ids = dict(db.execute("SELECT username, id FROM users").fetchall())
        case_ids = dict(db.execute("SELECT accession, id FROM cases").fetchall())
    tokens = {name: api_token(data_dir, name) for name in ("north.path", "north.onc", "stu")}
    server = start_server(data_dir)
    yield World(server, tokens, ids, case_ids)
    stop_server(server)


def _states(client: YClient, client_id: int) -> list[Any]:
    """Every state of ``client_id`` that reached ``client``, in order (None: removed)."""
    found = []
    for data in client.frames:
        frame = parse(data)
        if frame.kind == YMessageType.AWARENESS:
            found += [
                json.loads(e.state_json) for e in parse_awareness(frame.payload) if e.client_id == client_id
            ]
    return found


def _latest(client: YClient, client_id: int, key: str, value: object) -> Callable[[], bool]:
    return lambda: (client.awareness.get(client_id) or {}).get(key) == value


async def _say(client: YClient, *entries: tuple[int, int, dict[str, Any] | None]) -> None:
    """One awareness frame with these (client id, clock, state) entries."""
    await client.send_raw(encode_awareness([AwarenessEntry(c, k, json.dumps(s)) for c, k, s in entries]))


async def _answered(client: YClient) -> bool:
    """Sends a sync step 1 and waits: True once the server answers it, False if it closed instead."""

    def answers() -> int:
        return sum(1 for data in client.frames if data[:2] == b"\x00\x01")

    before = answers()
    await client.send_raw(create_sync_message(client.doc))
    await client.wait_for(lambda: answers() > before or client.closed.is_set())
    return answers() > before


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Polls the database file (outside the protocol) until ``predicate`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def _identity(state: dict[str, Any]) -> tuple[Any, ...]:
    user = state.get("user") or {}
    return user.get("id"), user.get("name"), user.get("role"), user.get("organisation")


def test_a_state_claiming_someone_else_is_relayed_with_its_senders_identity(world: World) -> None:
    async def scenario() -> None:
        observer = await world.join("P-1", "north.path")
        student = await world.join("P-1", "stu")
        me = student.doc.client_id
        chair = {"id": world.ids["north.path"], "name": "Dr Nadia Okafor", "role": "pathologist"}
        await _say(student, (me, 1, {"user": {**chair, "organisation": "North Trust"}, "n": 1}))
        await observer.wait_for(_latest(observer, me, "n", 1))
        await _say(student, (me, 2, {"n": 2}))  # naming nobody: the server names them
        await observer.wait_for(_latest(observer, me, "n", 2))
        seen = [_identity(s) for s in _states(observer, me)]
        student_is = (world.ids["stu"], "Sam Student", "student", "North Trust")
        assert seen == [student_is, student_is], seen
        colour = observer.awareness[me]["user"]["colour"]
        assert re.fullmatch(r"#[0-9a-f]{6}", colour), colour
        await student.wait_for(_latest(student, me, "n", 2))  # the sender is told its state as relayed
        assert _identity(student.awareness[me]) == student_is
        await student.close()
        await observer.close()

    asyncio.run(scenario())


def test_presenting_signals_of_a_read_only_participant_are_neutralised(world: World) -> None:
    async def scenario() -> None:
        presenter = await world.join("P-2", "north.path")
        student = await world.join("P-2", "stu")
        observer = await world.join("P-2", "north.onc")
        me, them = student.doc.client_id, presenter.doc.client_id
        view = {"slide": "s1", "x": 10, "y": 20, "width": 400, "rotation": 0}
        await _say(
            student,
            (me, 1, {
                "presenting": True, "summon": {"at": 1, "view": view}, "grant": {"to": me, "at": 1},
                "takeBack": {"from": them, "at": 1}, "ask": {"to": them, "at": 1}, "view": view, "n": 1,
            }),
        )  # fmt: skip
        await observer.wait_for(_latest(observer, me, "n", 1))
        state = observer.awareness[me]
        got = {k: state.get(k) for k in ("presenting", "summon", "grant", "takeBack")}
        assert got == {"presenting": False, "summon": None, "grant": None, "takeBack": None}, got
        assert state["ask"] == {"to": them, "at": 1} and state["view"] == view  # the rest is theirs
        # A contributor's are relayed as sent.
        await _say(presenter, (them, 1, {"presenting": True, "summon": {"at": 5, "view": view}, "n": 1}))
        await student.wait_for(_latest(student, them, "n", 1))
        assert student.awareness[them]["presenting"] is True
        assert student.awareness[them]["summon"] == {"at": 5, "view": view}
        assert not any(s and s.get("presenting") for s in _states(observer, me))
        for client in (student, presenter, observer):
            await client.close()

    asyncio.run(scenario())


def test_the_meetings_chair_presents_in_its_cases_and_only_there(world: World) -> None:
    async def scenario() -> None:
        for accession, may in ((CHAIRED, True), ("P-3", False)):
            observer = await world.join(accession, "north.path")
            chair = await world.join(accession, "north.onc")  # a clinician: read-only on both cases
            me = chair.doc.client_id
            await _say(chair, (me, 1, {"presenting": True, "summon": {"at": 1, "view": None}, "n": 1}))
            await observer.wait_for(_latest(observer, me, "n", 1))
            got = observer.awareness[me]
            assert (accession, got["presenting"], got["summon"] is not None) == (accession, may, may)
            await chair.close()
            await observer.close()

    asyncio.run(scenario())


def test_the_case_says_who_may_present_and_why_not(world: World) -> None:
    client = world.server.client
    found = {}
    for username in ("north.path", "north.onc", "stu"):
        for accession in (CHAIRED, "P-3"):
            response = client.get(
                f"/api/cases/{world.case_ids[accession]}",
                headers={"Authorization": f"Bearer {world.tokens[username]}"},
            )
            assert response.status_code == 200, response.text
            found[username, accession] = response.json().get("may_present")
    assert found == {
        ("north.path", CHAIRED): True,
        ("north.path", "P-3"): True,
        ("north.onc", CHAIRED): True,  # chairs the meeting of this case
        ("north.onc", "P-3"): False,
        ("stu", CHAIRED): False,
        ("stu", "P-3"): False,
    }, found


def test_a_hand_over_lets_a_read_only_person_present_until_it_is_taken_back(world: World) -> None:
    async def scenario() -> None:
        presenter = await world.join("P-4", "north.path")
        student = await world.join("P-4", "stu")
        observer = await world.join("P-4", "north.onc")
        me, them = student.doc.client_id, presenter.doc.client_id

        async def student_presents(n: int) -> bool:
            await _say(student, (me, n, {"presenting": True, "n": n}))
            await observer.wait_for(_latest(observer, me, "n", n))
            return bool(observer.awareness[me]["presenting"])

        await _say(presenter, (them, 1, {"presenting": True, "n": 1}))
        await observer.wait_for(_latest(observer, them, "n", 1))
        assert not await student_presents(1), "nobody handed over yet"
        await _say(presenter, (them, 2, {"presenting": False, "grant": {"to": me, "at": 100}, "n": 2}))
        await observer.wait_for(_latest(observer, them, "n", 2))
        assert await student_presents(2), "handed over"
        assert await student_presents(3), "still presenting"
        take_back = {"presenting": True, "grant": {"to": me, "at": 100}, "takeBack": {"from": me, "at": 200}}
        await _say(presenter, (them, 3, {**take_back, "n": 3}))
        # The server ends the student's presenting at once, whatever their client does.
        await observer.wait_for(_latest(observer, me, "presenting", False))
        assert not await student_presents(10), "taken back"
        # The old grant, still in the presenter's state, is not a new one.
        await _say(presenter, (them, 4, {**take_back, "n": 4}))
        await observer.wait_for(_latest(observer, them, "n", 4))
        assert not await student_presents(11), "an old grant seen again"
        for client in (student, presenter, observer):
            await client.close()

    asyncio.run(scenario())


def test_a_client_id_stays_with_its_first_owner_after_they_leave(world: World) -> None:
    async def scenario() -> None:
        observer = await world.join("P-5", "north.onc")
        owner = await world.join("P-5", "north.path")
        taken = owner.doc.client_id
        await _say(owner, (taken, 1, {"n": 1}))
        await observer.wait_for(_latest(observer, taken, "n", 1))
        await owner.close()
        await observer.wait_for(lambda: taken not in observer.awareness)
        # The student's link claims the gone owner's id, then announces its own.
        student = await world.join("P-5", "stu")
        await _say(student, (taken, 5, {"n": 2}))
        await _say(student, (student.doc.client_id, 1, {"n": 3}))
        await observer.wait_for(_latest(observer, student.doc.client_id, "n", 3))
        assert [s for s in _states(observer, taken) if s and s.get("n") == 2] == [], "the id was taken over"
        # Its owner, back in a new tab or after a reconnect, takes it back (while that link
        # lingers, too: the newer state wins and the old link's end no longer removes it).
        back = await world.join("P-5", "north.path")
        await _say(back, (taken, 6, {"n": 4}))
        await observer.wait_for(_latest(observer, taken, "n", 4))
        again = await world.join("P-5", "north.path")
        await _say(again, (taken, 7, {"n": 5}))
        await observer.wait_for(_latest(observer, taken, "n", 5))
        await back.close()
        await _say(again, (taken, 8, {"n": 6}))
        await observer.wait_for(_latest(observer, taken, "n", 6))
        assert [s and s.get("n") for s in _states(observer, taken)] == [1, None, 4, 5, 6]
        for client in (student, again, observer):
            await client.close()

    asyncio.run(scenario())


def test_only_the_real_presenters_views_reach_the_timeline(world: World) -> None:
    case_id = world.case_ids["P-6"]

    def path_of(username: str) -> list[tuple[Any, ...]]:
        return world.rows(
            "SELECT x FROM presenter_path WHERE case_id = ? AND user_id = ?", case_id, world.ids[username]
        )

    async def scenario() -> None:
        presenter = await world.join("P-6", "north.path")
        student = await world.join("P-6", "stu")
        me, them = student.doc.client_id, presenter.doc.client_id
        for n in (1, 2):
            view = {"slide": "s1", "x": 100 * n, "y": 5, "width": 400, "rotation": 0}
            await _say(student, (me, n, {"presenting": True, "view": view, "n": n}))
            await presenter.wait_for(_latest(presenter, me, "n", n))
        view = {"slide": "s1", "x": 999, "y": 5, "width": 400, "rotation": 0}
        await _say(presenter, (them, 1, {"presenting": True, "view": view}))
        # Samples reach the disk in the order they came, in batches.
        await _until(lambda: bool(path_of("north.path")))
        assert path_of("stu") == []
        await student.close()
        await presenter.close()

    asyncio.run(scenario())


def test_a_thousand_client_ids_close_the_link_and_store_at_most_four(world: World) -> None:
    case_id = world.case_ids["P-7"]

    async def scenario() -> None:
        observer = await world.join("P-7", "north.path")
        student = await world.join("P-7", "stu")
        await _say(student, *[(1_000_000 + i, 1, {"n": i}) for i in range(1000)])
        alive = await _answered(student)
        # Whatever was written for the student is on disk once the observer's own id is.
        await _say(observer, (observer.doc.client_id, 1, {"n": 1}))
        mine = (case_id, world.ids["north.path"])
        await _until(
            lambda: bool(world.rows("SELECT 1 FROM doc_clients WHERE case_id = ? AND user_id = ?", *mine))
        )
        (stored,) = world.rows(
            "SELECT count(*) FROM doc_clients WHERE case_id = ? AND user_id = ?", case_id, world.ids["stu"]
        )[0]
        assert (alive, student.close_code, stored <= 4) == (False, 4429, True), (
            alive,
            student.close_code,
            stored,
        )
        assert student.close_reason
        assert len(observer.awareness) <= 5, len(observer.awareness)
        assert await _answered(observer)
        await observer.close()

    asyncio.run(scenario())


def test_one_persons_presence_is_bounded_across_links_and_a_newcomers_greeting_with_it(world: World) -> None:
    async def scenario() -> None:
        observer = await world.join("P-8", "north.path")
        links = []
        for link in range(3):  # four states of 15,000 bytes on each of three links
            student = await world.join("P-8", "stu")
            links.append(student)
            await _say(student, *[(2_000_000 + link * 10 + i, 1, {"pad": "x" * 15_000}) for i in range(4)])
            await _answered(student)
        newcomer = await world.join("P-8", "north.path")
        greeting = sum(len(data) for data in newcomer.frames if data[0] == YMessageType.AWARENESS)
        codes = [s.close_code if s.closed.is_set() else "open" for s in links]
        assert (greeting <= 64 * 1024, codes) == (True, ["open", 4429, 4429]), (
            f"a newcomer was greeted with {greeting:,} bytes of one person's presence; links: {codes}"
        )
        assert await _answered(observer)
        for client in (*links, observer, newcomer):
            await client.close()

    asyncio.run(scenario())


def test_one_person_holds_at_most_sixteen_ids_at_once_in_a_room(world: World) -> None:
    async def scenario() -> None:
        observer = await world.join("P-10", "north.onc")
        links = []
        for link in range(5):  # four ids each: the fifth link is one too many
            student = await world.join("P-10", "stu")
            links.append(student)
            await _say(student, *[(3_000_000 + link * 10 + i, 1, {"n": i}) for i in range(4)])
            await _answered(student)
        codes = [s.close_code if s.closed.is_set() else "open" for s in links]
        assert codes == ["open"] * 4 + [4429], codes
        for client in (*links, observer):
            await client.close()

    asyncio.run(scenario())


def test_the_server_paints_people_in_the_viewers_colours() -> None:
    from collab.sync.presence import COLOURS

    source = (REPO / "static" / "src" / "presence.js").read_text()
    palette = re.search(r"const COLOURS = \[([^\]]*)\]", source)
    assert palette
    assert tuple(re.findall(r'"(#[0-9a-f]{6})"', palette[1])) == COLOURS


def test_in_a_teaching_room_a_student_is_relayed_as_themselves(request: pytest.FixtureRequest) -> None:
    classroom: Classroom = request.getfixturevalue("teaching_classroom")
    ann = join(classroom, "Ann")
    educator_id = classroom.educator.get(f"/teach/{classroom.session_id}/state.json").json()["user"]["id"]

    async def scenario() -> None:
        educator = await YClient(classroom.ws(), classroom.educator.token).connect()
        await educator.wait_for(educator.synced.is_set)
        student = await YClient(classroom.ws(), "", headers=ann.cookie_header()).connect()
        await student.wait_for(student.synced.is_set)
        me = student.doc.client_id
        posing = {"id": educator_id, "name": "Dr North", "role": "educator"}
        await _say(student, (me, 1, {"user": posing, "presenting": True, "n": 1}))
        await educator.wait_for(_latest(educator, me, "n", 1))
        state = educator.awareness[me]
        assert _identity(state) == (-ann.participant, "Ann", "student", None), state["user"]
        assert state["presenting"] is False
        await student.close()
        await educator.close()

    asyncio.run(scenario())
