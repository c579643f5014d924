"""Crashes and bad links: kill -9 of the server or of clients mid-burst, a database killed
mid-write, a reader that stops reading, and a slow lossy link. Real servers, real npm
y-websocket clients (tests/node/annotator.mjs) that reconnect and resync as browsers do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Doc, Map

from collab.store.database import Database
from collab.sync.protocol import AwarenessEntry, encode_awareness
from tests.conftest import (
    REPO,
    Server,
    add_user,
    api_token,
    connect_db,
    connect_file,
    database_for,
    free_port,
    sqlite_only,
    start_server,
    stop_server,
)
from tests.netproxy import FlakyProxy
from tests.yclient import YClient

ANNOTATOR = REPO / "tests" / "node" / "annotator.mjs"


@pytest.fixture
def node() -> None:
    if shutil.which("node") is None or not (REPO / "node_modules" / "y-websocket").exists():
        pytest.skip("node and the npm packages (scripts/setup) are needed")


@dataclass
class Person:
    username: str
    token: str
    user_id: int


def _people(data_dir: Path, n: int) -> list[Person]:
    """``north.path`` (from the ``case`` fixture) and n - 1 more contributors of North Trust,
    pathologists and trainees, so that replays after a crash carry other people's work."""
    for number in range(1, n):
        role = "trainee" if number % 2 else "pathologist"
        add_user(data_dir, f"north.{role}{number}", role, "North Trust")
    with connect_db(data_dir) as db:
        ids = dict(db.execute("SELECT username, id FROM users ORDER BY id").fetchall())
    return [Person(name, api_token(data_dir, name), user_id) for name, user_id in list(ids.items())[:n]]


def _case_id(data_dir: Path) -> str:
    with connect_db(data_dir) as db:
        return str(db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()[0])


def _ws(server_url: str) -> str:
    """y-websocket's server URL: the room (case id) goes after it."""
    return server_url.replace("http://", "ws://") + "/ws/cases"


class Annotator:
    """A tests/node/annotator.mjs process, drawing annotations, and what it has told us."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.said: list[dict[str, Any]] = []
        self.times: list[float] = []  # time.monotonic() as each of ``said`` arrived
        self.created: list[str] = []
        self.client_id = 0
        self.status = ""
        self.syncs = 0  # first sync, then one per reconnect
        self.peers = 0
        self.doc: set[str] = set()
        self.reports = 0
        self.changed = asyncio.Condition()
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, ws_url: str, case_id: str, person: Person, every_ms: int = 20, max_backoff_ms: int = 500
    ) -> Annotator:
        config = {"name": person.username, "author": person.user_id, "prefix": person.username}
        config["every_ms"] = every_ms
        config["max_backoff_ms"] = max_backoff_ms  # the viewer's is 2000 (static/src/session.js)
        process = await asyncio.create_subprocess_exec(
            "node",
            str(ANNOTATOR),
            ws_url,
            case_id,
            person.token,
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=1 << 24,  # a report lists every annotation on one line
        )
        return cls(person.username, process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:  # node's own complaints, kept for the failure message
                event = {"text": line.decode(errors="replace")}
            self.said.append(event)
            self.times.append(time.monotonic())
            if "created" in event:
                self.created.append(event["created"])
            self.client_id = event.get("client", self.client_id)
            self.status = event.get("status", self.status)
            self.syncs += "synced" in event
            self.peers = event.get("peers", self.peers)
            if "doc" in event:
                self.doc = set(event["doc"])
                self.reports += 1
            async with self.changed:
                self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(predicate)
        except TimeoutError:
            tail = [e for e in self.said if "created" not in e][-8:]
            raise AssertionError(
                f"{self.name}: no {what} within {timeout} s; made {len(self.created)}, said {tail}"
            ) from None

    async def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        """No more annotations; returns once it has made its last."""
        said = len(self.said)
        await self.tell("stop")
        # Any event since the command, not the last one: a peer may join right after it.
        await self.wait_for(lambda: any("stopped" in event for event in self.said[said:]), "stop")

    async def converge(self, ids: set[str], timeout: float = 30) -> set[str]:
        """Its document once it holds every one of ``ids``."""
        before = self.reports
        await self.tell("expect " + " ".join(sorted(ids)))
        await self.wait_for(lambda: self.reports > before, f"convergence on {len(ids)} annotations", timeout)
        return self.doc

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def quit(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.tell("quit")
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                await self.kill()
        await self._reading


async def _all(*waits: Awaitable[object]) -> None:
    await asyncio.gather(*waits)


@contextlib.asynccontextmanager
async def _annotators(ws_url: str, case_id: str, people: list[Person], every_ms: int = 20) -> Any:
    started = [await Annotator.start(ws_url, case_id, person, every_ms) for person in people]
    try:
        yield started
    finally:
        for annotator in started:
            await annotator.quit()


async def _fresh_copy(server: Server, case_id: str, token: str, expected: set[str]) -> set[str]:
    """The server's document as a newcomer gets it, once it holds ``expected``; a miss names what is lost."""
    fresh = await YClient(f"{_ws(server.url)}/{case_id}", token).connect()
    try:
        await fresh.wait_for(lambda: expected <= set(fresh.annotations().keys()), timeout=30)
    except TimeoutError:
        lost = expected - set(fresh.annotations().keys())
        raise AssertionError(
            f"{len(lost)} of {len(expected)} annotations lost: {sorted(lost)[:10]}"
        ) from None
    finally:
        await fresh.close()
    return set(fresh.annotations().keys())


def _stored(data_dir: Path, case_id: str) -> set[str]:
    """The annotations of the document as collab loads it from the database (server stopped)."""

    async def load() -> list[bytes]:
        async with Database(data_dir / "collab.sqlite3", database_for(data_dir)) as db:
            return await db.documents.load(case_id)

    doc: Doc[Any] = Doc()
    for update in asyncio.run(load()):
        doc.apply_update(update)
    return set(doc.get("annotations", type=Map).keys())


def _kill_9(server: Server) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    stop_server(server)  # closes its client and log pipe; the process is already gone


def test_kill_9_of_the_server_while_five_annotate_loses_nothing(
    node: None, data_dir: Path, case: str, servers: list[Server]
) -> None:
    people = _people(data_dir, 5)
    case_id = _case_id(data_dir)
    port = free_port()
    servers.append(start_server(data_dir, port))

    async def scenario() -> tuple[int, set[str]]:
        async with _annotators(_ws(servers[0].url), case_id, people) as annotators:
            await _all(*(a.wait_for(lambda a=a: len(a.created) >= 30, "30 annotations") for a in annotators))
            await asyncio.to_thread(_kill_9, servers[0])  # mid-burst: each draws one every 20 ms
            await _all(
                *(a.wait_for(lambda a=a: a.status == "disconnected", "disconnect") for a in annotators)
            )
            on_disk = len(await asyncio.to_thread(_stored, data_dir, case_id))
            servers.append(await asyncio.to_thread(start_server, data_dir, port))
            # They drew on while the server was away; y-websocket reconnects and resyncs by itself.
            marks = {a: len(a.created) for a in annotators}
            await _all(
                *(
                    a.wait_for(
                        lambda a=a: a.syncs >= 2 and len(a.created) >= marks[a] + 30, "resync, 30 more"
                    )
                    for a in annotators
                )
            )
            for a in annotators:
                await a.stop()
            created = {i for a in annotators for i in a.created}
            assert len(created) == sum(len(a.created) for a in annotators)
            found = await _fresh_copy(servers[1], case_id, people[0].token, created)
            for a in annotators:
                assert await a.converge(created) == found
            return on_disk, found

    on_disk, found = asyncio.run(scenario())
    stop_server(servers[1])
    assert _stored(data_dir, case_id) == found
    print(f"\n{len(found)} annotations by 5 clients, 0 lost: {on_disk} were on disk at the kill,")
    print(
        f"{len(found) - on_disk} came back from the clients (unflushed, or drawn while the server was down)"
    )


def test_clients_killed_mid_burst_lose_nothing_that_reached_the_server(
    node: None, data_dir: Path, case: str, servers: list[Server]
) -> None:
    people = _people(data_dir, 5)
    case_id = _case_id(data_dir)
    servers.append(start_server(data_dir))
    server = servers[0]

    async def scenario() -> tuple[set[str], set[str]]:
        watcher = await YClient(f"{_ws(server.url)}/{case_id}", people[0].token).connect()
        await watcher.synced.wait()
        await watcher.set_awareness({"user": {"name": "watcher"}})
        async with _annotators(_ws(server.url), case_id, people) as annotators:
            await _all(*(a.wait_for(lambda a=a: len(a.created) >= 25, "25 annotations") for a in annotators))
            await watcher.wait_for(lambda: {a.client_id for a in annotators} <= set(watcher.awareness))
            victims, survivors = annotators[:2], annotators[2:]
            for victim in victims:
                await victim.kill()
            # Their pointers go for everyone at once, not after y-protocols' 30 s timeout.
            gone = {v.client_id for v in victims}
            await watcher.wait_for(lambda: not gone & set(watcher.awareness), timeout=10)
            await _all(
                *(s.wait_for(lambda s=s: s.peers == 3, "2 peers + the watcher", 10) for s in survivors)
            )
            # The server goes on serving the others.
            marks = {s: len(s.created) for s in survivors}
            await _all(
                *(s.wait_for(lambda s=s: len(s.created) >= marks[s] + 25, "25 more") for s in survivors)
            )
            for s in survivors:
                await s.stop()
            by_survivors = {i for s in survivors for i in s.created}
            by_victims = {i for v in victims for i in v.created}
            found = await _fresh_copy(server, case_id, people[1].token, by_survivors)
            await watcher.wait_for(lambda: found <= set(watcher.annotations().keys()))
            received = set(watcher.annotations().keys())
            for s in survivors:
                received |= await s.converge(by_survivors)
            # Everything the killed clients got through to anyone is kept; nothing else appears.
            assert found == by_survivors | (by_victims & received)
            assert not watcher.closed.is_set()
        await watcher.close()
        return found, by_victims

    found, by_victims = asyncio.run(scenario())
    stop_server(server)
    assert _stored(data_dir, case_id) == found
    kept = len(by_victims & found)
    print(f"\n{len(found)} annotations kept; the 2 killed clients drew {len(by_victims)}, {kept} of which")
    print(f"had reached the server; {len(by_victims) - kept} died with their process before being sent")


@sqlite_only("a torn frame in SQLite's WAL file; PostgreSQL's own recovery is not ours to test")
def test_a_database_killed_mid_write_keeps_every_committed_row(
    node: None, data_dir: Path, case: str, servers: list[Server]
) -> None:
    """Power cut during a burst: kill -9 mid-write, plus a torn frame at the end of the WAL."""
    people = _people(data_dir, 3)
    case_id = _case_id(data_dir)
    port = free_port()
    servers.append(start_server(data_dir, port))
    database = data_dir / "collab.sqlite3"
    committed: dict[int, bytes] = {}  # doc_updates rows a reader saw committed, by id
    reading = threading.Event()

    def reader() -> None:
        # Another process's view of the file (read-only, WAL): only committed rows are visible.
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            while not reading.wait(0.005):
                last = max(committed, default=0)
                rows = db.execute(
                    "SELECT id, update_data FROM doc_updates WHERE case_id = ? AND id > ?", (case_id, last)
                ).fetchall()
                committed.update(rows)

    async def burst() -> set[str]:
        watching = threading.Thread(target=reader)
        watching.start()
        try:
            async with _annotators(_ws(servers[0].url), case_id, people, every_ms=2) as annotators:
                await _all(
                    *(a.wait_for(lambda a=a: len(a.created) >= 150, "150 annotations") for a in annotators)
                )
                await asyncio.to_thread(_kill_9, servers[0])
                # What they drew until now, committed or not, is what must survive; drawing on
                # every 2 ms while the server restarts would only grow the document with the
                # machine's slowness (tens of thousands of annotations on a loaded CI machine).
                for a in annotators:
                    await a.stop()
                reading.set()
                await asyncio.to_thread(watching.join)
                await asyncio.to_thread(_examine_after_power_cut, database, case_id, committed)
                servers.append(await asyncio.to_thread(start_server, data_dir, port))
                acknowledged = _annotations_in(committed.values())
                await _fresh_copy(servers[1], case_id, people[0].token, acknowledged)
                # Then the clients push what was never committed (0 lost overall).
                await _all(*(a.wait_for(lambda a=a: a.syncs >= 2, "resync") for a in annotators))
                created = {i for a in annotators for i in a.created}
                return await _fresh_copy(servers[1], case_id, people[0].token, created)
        finally:
            reading.set()
            watching.join()

    found = asyncio.run(burst())
    stop_server(servers[1])
    assert _stored(data_dir, case_id) == found
    acknowledged = _annotations_in(committed.values())
    print(
        f"\n{len(committed)} rows seen committed before the kill ({len(acknowledged)} annotations), all kept;"
    )
    print(f"{len(found)} annotations in all after the clients resynced")


def _annotations_in(updates: Any) -> set[str]:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return set(doc.get("annotations", type=Map).keys())


def _examine_after_power_cut(database: Path, case_id: str, committed: dict[int, bytes]) -> None:
    """Tear the WAL's end as a power cut mid-write would, then check the file and every committed row."""
    assert committed, "the reader saw nothing committed before the kill"
    wal = database.with_name(database.name + "-wal")
    with wal.open("ab") as torn:  # half a frame of an in-flight transaction
        torn.write(random.Random(7).randbytes(24 + 2048))
    with connect_file(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = dict(
            db.execute(
                "SELECT id, update_data FROM doc_updates WHERE case_id = ? AND id <= ?",
                (case_id, max(committed)),
            )
        )
    missing = committed.keys() - rows.keys()
    assert not missing, f"{len(missing)} committed rows lost"
    assert all(rows[i] == committed[i] for i in committed)


def _pointer(watcher: YClient, of: YClient) -> dict[str, object]:
    return dict(watcher.awareness.get(of.doc.client_id) or {})


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_stalled_reader_costs_bounded_memory_and_holds_up_nobody(
    data_dir: Path, case: str, servers: list[Server]
) -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the server's memory from /proc")
    people = _people(data_dir, 2)
    case_id = _case_id(data_dir)
    servers.append(start_server(data_dir))
    server = servers[0]
    url = f"{_ws(server.url)}/{case_id}"
    peak = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.wait(0.01):
            peak = max(peak, _rss_bytes(server.process.pid))

    async def scenario() -> tuple[int, int]:
        # A raw client that announces a pointer, then reads nothing (its receive window fills up).
        stalled = await websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {people[1].token}"}, max_queue=1
        )
        stalled_id = 777
        await stalled.send(encode_awareness([AwarenessEntry(stalled_id, 1, '{"user": {"name": "stalled"}}')]))
        sender = await YClient(url, people[0].token).connect()
        watcher = await YClient(url, people[1].token).connect()
        await watcher.wait_for(lambda: stalled_id in watcher.awareness)
        baseline = _rss_bytes(server.process.pid)
        sampler = threading.Thread(target=sample)
        sampler.start()
        # 100 MB of pointer states (each within the 16 KiB a state may hold), 1 MB at a time as
        # fast as the watcher takes them.
        bulk = "x" * 15_000
        n = 0
        try:
            for _ in range(100):
                for _ in range(68):
                    n += 1
                    await sender.set_awareness({"n": n, "bulk": bulk})
                await watcher.wait_for(lambda n=n: _pointer(watcher, sender).get("n") == n, timeout=30)
            # The stalled one was dropped; everyone else stayed.
            await watcher.wait_for(lambda: stalled_id not in watcher.awareness, timeout=10)
            assert not watcher.closed.is_set() and not sender.closed.is_set()
        finally:
            sampling.set()
            await asyncio.to_thread(sampler.join)
        await stalled.close()
        await sender.close()
        await watcher.close()
        return baseline, n * len(bulk)

    baseline, sent = asyncio.run(scenario())
    grown = peak - baseline
    print(f"\n{sent / 1e6:.0f} MB relayed past a stalled reader; server RSS {baseline / 1e6:.0f} MB,")
    print(f"peak +{grown / 1e6:.0f} MB")
    assert grown < 150e6


def test_a_slow_lossy_link_converges(node: None, data_dir: Path, case: str, servers: list[Server]) -> None:
    """300 ms each way (600 ms round trip), 2% of chunks late by a retransmission timeout;
    one Node client's link is also cut once mid-way (it reconnects)."""
    people = _people(data_dir, 3)
    case_id = _case_id(data_dir)
    servers.append(start_server(data_dir))
    server = servers[0]
    port = int(server.url.rsplit(":", 1)[1])

    async def scenario() -> tuple[set[str], str]:
        async with (
            FlakyProxy(port, one_way_s=0.3, loss=0.02, seed=1) as link,
            FlakyProxy(port, one_way_s=0.3, loss=0.02, seed=2) as cut_link,
        ):
            python = await YClient(
                f"ws://127.0.0.1:{link.port}/ws/cases/{case_id}", people[0].token
            ).connect()
            await python.synced.wait()
            by_python = [f"python-{k}" for k in range(20)]

            async def answer_each_node_annotation() -> None:
                # Concurrent with the Node clients: one annotation per Node annotation seen.
                for k, key in enumerate(by_python):
                    await python.wait_for(
                        lambda k=k: sum(not i.startswith("python") for i in python.annotations()) > k,
                        timeout=30,
                    )
                    python.annotations()[key] = Map(
                        {
                            "slide": "s1",
                            "kind": "point",
                            "points": [[k, k]],
                            "label": key,
                            "author": str(people[0].user_id),
                        }
                    )

            answering = asyncio.create_task(answer_each_node_annotation())
            async with (
                _annotators(f"ws://127.0.0.1:{link.port}/ws/cases", case_id, people[1:2], 100) as (steady,),
                _annotators(f"ws://127.0.0.1:{cut_link.port}/ws/cases", case_id, people[2:3], 100) as (cut,),
            ):
                await cut.wait_for(lambda: len(cut.created) >= 15, "15 annotations")
                cut_link.cut()
                mark = len(cut.created)
                await cut.wait_for(
                    lambda: cut.syncs >= 2 and len(cut.created) >= mark + 15, "resync, 15 more"
                )
                await steady.wait_for(lambda: len(steady.created) >= 40, "40 annotations")
                await answering
                await steady.stop()
                await cut.stop()
                created = set(steady.created) | set(cut.created) | set(by_python)
                await python.wait_for(lambda: created <= set(python.annotations().keys()), timeout=30)
                assert set(python.annotations().keys()) == created
                assert await steady.converge(created) == created
                assert await cut.converge(created) == created
            await python.close()
            stats = f"{link.stats} {cut_link.stats}"
        assert await _fresh_copy(server, case_id, people[0].token, created) == created
        return created, stats

    created, stats = asyncio.run(scenario())
    stop_server(server)
    assert _stored(data_dir, case_id) == created
    print(f"\n{len(created)} annotations converged over the lossy links: {stats}")


def _wait_for_log(server: Server, text: str, timeout_s: float = 30) -> None:
    """Until the server's log says ``text`` (polled: the log is a file)."""
    log = server.data_dir / "server.log"
    deadline = time.monotonic() + timeout_s
    while text not in (log.read_text(errors="replace") if log.exists() else ""):
        assert time.monotonic() < deadline, f"the server never logged {text!r}"
        time.sleep(0.05)  # the poll interval


@sqlite_only("holds the SQLite file's write lock; tests/test_postgres.py restarts PostgreSQL")
def test_a_write_the_disk_refuses_is_kept_and_retried(
    data_dir: Path, case: str, servers: list[Server]
) -> None:
    """A database locked past the busy timeout (another program holding it, a full disk)
    refuses a batch: it stays queued and reaches the disk once the disk takes it again."""
    server = start_server(data_dir)
    servers.append(server)
    case_id = _case_id(data_dir)
    (person,) = _people(data_dir, 1)
    database = data_dir / "collab.sqlite3"

    async def scenario() -> None:
        client = await YClient(f"{_ws(server.url)}/{case_id}", person.token).connect()
        await client.synced.wait()
        holder = sqlite3.connect(database, timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # nobody else writes until this ends
        try:
            for n in range(5):
                client.annotations()[f"locked-{n}"] = Map(
                    {"slide": "s1", "kind": "point", "points": [[n, n]], "label": "kept",
                     "author": str(person.user_id), "created": "2026-11-29T10:00:00Z"}
                )  # fmt: skip
            await asyncio.to_thread(_wait_for_log, server, "could not save document updates")
        finally:
            holder.execute("COMMIT")
            holder.close()
        want = {f"locked-{n}" for n in range(5)}
        deadline = time.monotonic() + 30
        while not want <= _committed_annotations(database, case_id):
            assert time.monotonic() < deadline, "the refused batch never reached the disk"
            await asyncio.sleep(0.05)  # the poll interval
        await client.close()

    asyncio.run(scenario())


def _committed_annotations(database: Path, case_id: str) -> set[str]:
    """Annotations in what the database holds now (read while the server runs)."""
    with connect_file(database) as db:
        rows = db.execute(
            "SELECT update_data FROM doc_updates WHERE case_id = ? ORDER BY id", (case_id,)
        ).fetchall()
    doc: Doc[Any] = Doc()
    for (update,) in rows:
        doc.apply_update(bytes(update))
    return set(doc.get("annotations", type=Map).keys())
