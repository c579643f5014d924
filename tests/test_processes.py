"""Several server processes serving one room through a real Redis (collab serve --redis-url):
clients spread across them converge, each update is stored once, a process killed with
SIGKILL takes its pointers with it, and a Redis restart loses nothing. Real `collab serve`
processes on one data dir, a real redis-server, real nginx in front where a balancer is
needed, npm y-websocket clients (tests/node/annotator.mjs) and Python Yjs clients."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.balancer import Nginx
from tests.balancer import available as nginx_available
from tests.conftest import Server, add_user, collab, connect_db, sign_in_with_form, start_server, stop_server
from tests.redis_server import RedisServer
from tests.redis_server import available as redis_available
from tests.test_meetings import EVENT_SOURCE, step
from tests.test_resilience import Annotator, _case_id, _fresh_copy, _people, _stored, _ws, node  # noqa: F401
from tests.yclient import YClient, point_annotation

METRICS_TOKEN = secrets.token_urlsafe(32)

pytestmark = pytest.mark.skipif(
    not redis_available(), reason="redis-server is not installed (.ci/run installs it)"
)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer.start(tmp_path / "redis")
    yield server
    server.stop()


def _two(data_dir: Path, redis: RedisServer, servers: list[Server]) -> tuple[Server, Server]:
    for _ in range(2):
        servers.append(start_server(data_dir, args=["--redis-url", redis.url]))
    return servers[0], servers[1]


def _rows(data_dir: Path, case_id: str) -> list[bytes]:
    with connect_db(data_dir) as db:
        return [
            bytes(r[0])
            for r in db.execute("SELECT update_data FROM doc_updates WHERE case_id = ?", (case_id,))
        ]


async def _draw(client: YClient, author: int, prefix: str, n: int) -> set[str]:
    made = set()
    for i in range(n):
        key = f"{prefix}-{i}"
        client.annotations()[key] = point_annotation(author, key)
        made.add(key)
    return made


@pytest.mark.usefixtures("node")
def test_two_processes_serve_one_room_and_converge_storing_each_update_once(
    data_dir: Path, case: str, redis: RedisServer, servers: list[Server]
) -> None:
    people = _people(data_dir, 4)
    case_id = _case_id(data_dir)
    first, second = _two(data_dir, redis, servers)

    async def scenario() -> set[str]:
        annotators = [
            await Annotator.start(_ws(server.url), case_id, person, every_ms=15)
            for server, person in zip((first, second), people[:2], strict=True)
        ]
        py = [
            await YClient(f"{_ws(server.url)}/{case_id}", person.token).connect()
            for server, person in zip((first, second), people[2:], strict=True)
        ]
        try:
            for client in py:
                await client.synced.wait()
            for annotator in annotators:
                await annotator.wait_for(lambda a=annotator: len(a.created) >= 40, "40 annotations")
            made = set()
            for n, (client, person) in enumerate(zip(py, people[2:], strict=True)):
                made |= await _draw(client, person.user_id, f"py{n}", 30)
            # Pointers cross too: each Python client sees the other's.
            for n, client in enumerate(py):
                await client.set_awareness({"pointer": {"x": n, "y": n}})
            for client, other in ((py[0], py[1]), (py[1], py[0])):
                await client.wait_for(lambda c=client, o=other: o.doc.client_id in c.awareness)
            for annotator in annotators:
                await annotator.stop()
            made |= {key for annotator in annotators for key in annotator.created}
            for annotator in annotators:
                assert made <= await annotator.converge(made)
            for client in py:
                await client.wait_for(lambda c=client: made <= set(c.annotations().keys()), timeout=30)
            # A newcomer on either process gets it all.
            for server in (first, second):
                assert made <= await _fresh_copy(server, case_id, people[0].token, made)
            return made
        finally:
            for client in py:
                await client.close()
            for annotator in annotators:
                await annotator.quit()

    made = asyncio.run(scenario())
    for server in (first, second):
        stop_server(server)
    assert made <= _stored(data_dir, case_id)
    rows = _rows(data_dir, case_id)
    assert len(rows) == len(set(rows)), f"{len(rows) - len(set(rows))} updates were stored twice"
    print(f"\n{len(made)} annotations from 4 clients on 2 processes; {len(rows)} rows, none twice")


@pytest.mark.usefixtures("node")
def test_a_process_killed_mid_meeting_takes_its_pointers_and_loses_no_annotation(
    data_dir: Path, case: str, redis: RedisServer, servers: list[Server], tmp_path: Path
) -> None:
    if not nginx_available():
        pytest.skip("nginx is not installed (.ci/run installs it)")
    people = _people(data_dir, 5)
    case_id = _case_id(data_dir)
    first, second = _two(data_dir, redis, servers)
    balancer = Nginx.start(tmp_path / "nginx", [first.url, second.url])

    async def scenario() -> tuple[set[str], float, list[float]]:
        # Four annotators through the balancer (round robin: two on each process), and two
        # people whose pointers we watch, one straight on each process.
        annotators = [
            await Annotator.start(_ws(balancer.url), case_id, person, every_ms=20, max_backoff_ms=2000)
            for person in people[:4]
        ]
        doomed = await YClient(f"{_ws(first.url)}/{case_id}", people[4].token).connect()
        watcher = await YClient(f"{_ws(second.url)}/{case_id}", people[0].token).connect()
        try:
            await doomed.synced.wait()
            await watcher.synced.wait()
            await doomed.set_awareness({"pointer": {"x": 1, "y": 2}})
            await watcher.wait_for(lambda: doomed.doc.client_id in watcher.awareness)
            for annotator in annotators:
                await annotator.wait_for(lambda a=annotator: len(a.created) >= 30, "30 annotations")
            said = [len(annotator.said) for annotator in annotators]
            killed_at = time.monotonic()
            os.kill(first.process.pid, signal.SIGKILL)
            gone_for = asyncio.create_task(
                watcher.wait_for(lambda: doomed.doc.client_id not in watcher.awareness, timeout=15)
            )
            returns = await asyncio.gather(
                *(_back(a, n, killed_at) for a, n in zip(annotators, said, strict=True))
            )
            await gone_for
            vanished = time.monotonic() - killed_at
            reconnects = [r for r in returns if r is not None]
            for annotator in annotators:
                await annotator.stop()
            made = {key for annotator in annotators for key in annotator.created}
            for annotator in annotators:
                assert made <= await annotator.converge(made, timeout=60)
            assert made <= await _fresh_copy(second, case_id, people[0].token, made)
            return made, vanished, reconnects
        finally:
            await doomed.close()
            await watcher.close()
            for annotator in annotators:
                await annotator.quit()

    try:
        made, vanished, reconnects = asyncio.run(scenario())
    finally:
        balancer.stop()
    stop_server(first)  # already gone: closes its client and log pipe
    stop_server(second)
    assert reconnects, "no annotator was on the killed process: the test proved nothing"
    assert made <= _stored(data_dir, case_id)
    print(
        f"\nkill -9 of one of two processes: its pointer gone for the other's clients in {vanished:.2f} s; "
        f"{len(reconnects)} annotators reconnected through nginx and synced in "
        f"{', '.join(f'{r:.2f}' for r in sorted(reconnects))} s; {len(made)} annotations, 0 lost"
    )


def test_a_redis_restart_loses_nothing_and_the_rooms_resync(
    data_dir: Path, case: str, redis: RedisServer, servers: list[Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLAB_METRICS_TOKEN", METRICS_TOKEN)
    people = _people(data_dir, 2)
    case_id = _case_id(data_dir)
    first, second = _two(data_dir, redis, servers)

    async def scenario() -> set[str]:
        one = await YClient(f"{_ws(first.url)}/{case_id}", people[0].token).connect()
        two = await YClient(f"{_ws(second.url)}/{case_id}", people[1].token).connect()
        try:
            await one.synced.wait()
            await two.synced.wait()
            made = await _draw(one, people[0].user_id, "before", 10)
            await two.wait_for(lambda: made <= set(two.annotations().keys()))
            await asyncio.to_thread(redis.stop)
            await asyncio.to_thread(_wait_readiness, first, False)
            # Redis is away: each process serves its own clients, and stores their work.
            made |= await _draw(one, people[0].user_id, "during-one", 10)
            made |= await _draw(two, people[1].user_id, "during-two", 10)
            await asyncio.to_thread(redis.run)
            await asyncio.to_thread(_wait_readiness, first, True)
            made |= await _draw(one, people[0].user_id, "after", 10)
            for client in (one, two):
                await client.wait_for(lambda c=client: made <= set(c.annotations().keys()), timeout=30)
            await one.set_awareness({"pointer": {"x": 5, "y": 5}})
            await two.wait_for(lambda: one.doc.client_id in two.awareness, timeout=30)
            return made
        finally:
            await one.close()
            await two.close()

    made = asyncio.run(scenario())
    # Its link is up again, and the room's messages crossed it (counted for /metrics).
    token = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    text = first.get("/metrics", headers=token).text
    assert "collab_redis_up 1" in text
    assert re.search(r'collab_redis_messages_total\{direction="received"\} [1-9]', text), text[-800:]
    for server in (first, second):
        stop_server(server)
    assert made <= _stored(data_dir, case_id)
    print(f"\nRedis restarted mid-session: {len(made)} annotations on both processes, 0 lost")


async def _back(annotator: Annotator, since: int, killed_at: float) -> float | None:
    """Seconds from the kill until the annotator synced again, if its connection was cut (it
    has drawn 20 more annotations by then, whichever process it is on)."""

    def resynced() -> int | None:
        cut = False
        for i in range(since, len(annotator.said)):
            if annotator.said[i].get("status") == "disconnected":
                cut = True
            elif cut and "synced" in annotator.said[i]:
                return i
        return None

    count = len(annotator.created)
    await annotator.wait_for(lambda: len(annotator.created) >= count + 20, "20 more annotations")
    if not any(e.get("status") == "disconnected" for e in annotator.said[since:]):
        return None
    await annotator.wait_for(lambda: resynced() is not None, "a sync after reconnecting")
    at = resynced()
    assert at is not None
    return annotator.times[at] - killed_at


def _wait_readiness(server: Server, redis_up: bool) -> None:
    """Until /readyz says Redis is (or is not) answering; it checks afresh on every request."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = server.get("/readyz")
        if (answer.status_code == 200) == redis_up and (redis_up or answer.json()["checks"]["redis"] != "ok"):
            return
        time.sleep(0.05)  # the poll interval: not to flood the server it waits for
    raise AssertionError(f"/readyz still answers {answer.status_code} {answer.text}")


def test_a_meeting_room_open_on_two_processes_shows_every_step_and_everyone_in_it(
    data_dir: Path, redis: RedisServer, servers: list[Server]
) -> None:
    assert collab("orgs", "add", "North Trust", data_dir=data_dir).returncode == 0
    for username, role, name in (
        ("north.path", "pathologist", "Dr North"),
        ("north.onc", "clinician", "Dr Oncology North"),
        ("north.surgeon", "clinician", "Dr Surgeon North"),
        ("north.coord", "admin", "Ms Coordinator"),
    ):
        extra = ("--specialty", "oncology") if role == "clinician" else ()
        add_user(data_dir, username, role, "North Trust", "--name", name, *extra)
    made = collab("cases", "add", "M26-001", "--org", "North Trust", data_dir=data_dir)
    assert made.returncode == 0, made.stderr
    case_id = made.stdout.strip()
    meeting = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2026-12-01T13:00",
        "--chair", "north.path", "--coordinator", "north.coord",
        "--attendee", "north.onc", "--attendee", "north.surgeon", "--case", "M26-001", data_dir=data_dir,
    )  # fmt: skip
    assert meeting.returncode == 0, meeting.stderr
    meeting_id = meeting.stdout.strip()
    first, second = _two(data_dir, redis, servers)
    onc = sign_in_with_form(first, "north.onc")
    surgeon = sign_in_with_form(second, "north.surgeon")
    chair = sign_in_with_form(second, "north.path")
    events = f"/meetings/{meeting_id}/events"
    try:
        with onc.client.stream("GET", events, headers=EVENT_SOURCE, timeout=30) as onc_stream:
            onc_states = _states(onc_stream)
            assert next(onc_states)["current"] is None
            with surgeon.client.stream("GET", events, headers=EVENT_SOURCE, timeout=30) as surgeon_stream:
                surgeon_states = _states(surgeon_stream)
                # Each process's page sees the other's person in the room.
                both = ["Dr Oncology North", "Dr Surgeon North"]
                for states in (onc_states, surgeon_states):
                    here = _first(states, lambda s: len(s["here"]) == 2)["here"]
                    assert sorted(p["name"] for p in here) == both
                # The chair steps on the second process: the page open on the first follows.
                assert step(chair, meeting_id, case_id).status_code == 200
                assert _first(onc_states, lambda s: s["current"] == case_id)["agenda"][0]["presented"]
            # The surgeon closed the page on the second process: the first no longer counts them.
            left = _first(onc_states, lambda s: len(s["here"]) == 1)
            assert [p["name"] for p in left["here"]] == ["Dr Oncology North"]
    finally:
        for person in (onc, surgeon, chair):
            person.client.close()


def _states(response: httpx.Response) -> Iterator[dict[str, Any] | None]:
    """The states a room's event stream sends, and None for each heartbeat (every 15 s)."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])
        elif line.startswith(":"):
            yield None


def _first(
    states: Iterator[dict[str, Any] | None], wanted: Callable[[dict[str, Any]], bool], within: float = 40
) -> dict[str, Any]:
    """The first state that is ``wanted``; fails once a heartbeat comes ``within`` s without one."""
    deadline = time.monotonic() + within
    for state in states:
        if state is not None and wanted(state):
            return state
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no such state within {within} s")
