"""Pointer fan-out: our sync server against the reference Node server, side by side.

    .venv/bin/python bench/sync.py [--seconds 10] [--rate 30]

One sender per room moves its pointer (awareness) `--rate` times a second for
`--seconds`; every other client in the room receives it. Scenarios: one room of
N = 10, 50, 200 clients, and 50 rooms of 5. Each runs against `collab serve` and
against `@y/websocket-server` 0.1.1 (npm, the reference), with the same client
code and the same states. Both servers are up at once; after a warm-up, each is run
`--repeat` times, alternating which goes first. Printed per run and as medians over
the runs: send-to-receive latency p50/p99, share of messages delivered, server CPU
(percent of one core), and the ratios ours / reference. Then the same one-room
fan-out on our server while 8 other clients pull tiles at full speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import websockets

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collab.sync.presence import presence_user  # noqa: E402
from collab.sync.protocol import AwarenessEntry, encode_awareness, parse, parse_awareness  # noqa: E402

COLLAB = [sys.executable, "-m", "collab"]
REFERENCE = ["node", str(REPO / "node_modules" / "@y" / "websocket-server" / "src" / "server.js")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


@dataclass
class Target:
    """A server under test: how to reach room i."""

    name: str
    process: subprocess.Popen[bytes]
    urls: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    # Connection i speaks for people[i % len(people)] (headers, awareness ``user``): the server
    # caps live connections per person, and names every state's sender itself, so each client
    # sends its own identity as the viewer does. Empty: everyone uses ``headers``, no ``user``.
    people: list[tuple[dict[str, str], dict[str, object]]] = field(default_factory=list)
    # More server processes sharing the rooms (collab serve --redis-url), each with its own
    # addresses for them: a room's connections take turns across ``process`` and these.
    more: list[tuple[subprocess.Popen[bytes], list[str]]] = field(default_factory=list)

    def person(self, i: int) -> tuple[dict[str, str], dict[str, object] | None]:
        if not self.people:
            return self.headers, None
        return self.people[i % len(self.people)]

    def url(self, room: int, n: int) -> str:
        """Room ``room``'s address for its ``n``-th connection; ``place(n)`` says which process."""
        return self.urls[room] if self.place(n) == 0 else self.more[self.place(n) - 1][1][room]

    def place(self, n: int) -> int:
        return n % (1 + len(self.more))

    @property
    def pids(self) -> list[int]:
        return [self.process.pid, *(process.pid for process, _ in self.more)]

    def stop(self) -> None:
        for process in [self.process, *(process for process, _ in self.more)]:
            process.terminate()
        for process in [self.process, *(process for process, _ in self.more)]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_ours(tmp: Path, rooms: int) -> Target:
    return serve_ours(*setup_ours(tmp, rooms))


# Bench people: each may hold 20 live connections (collab.web.live), and the largest scenario
# has 250 clients.
PEOPLE = 16


def setup_ours(tmp: Path, rooms: int, people: int = PEOPLE) -> tuple[Path, str]:
    """A fresh data directory with ``people`` pathologists and ``rooms`` cases; returns it and the
    first one's API token (the others' are in ``bench-people.json`` there)."""
    data = Path(tempfile.mkdtemp(prefix="ours-", dir=tmp))

    run = lambda *a, stdin=None: subprocess.run(  # noqa: E731
        [*COLLAB, *a, "--data-dir", str(data)], input=stdin, capture_output=True, text=True, check=True
    ).stdout.strip()
    run("orgs", "add", "Bench Trust")
    run(
        "users",
        "add",
        "bench",
        "--role",
        "pathologist",
        "--org",
        "Bench Trust",
        "--password-stdin",
        stdin="bench-password-not-secret\n",
    )
    token = run("users", "token", "bench")

    def person(n: int) -> str:
        run(
            "users", "add", f"bench{n}", "--role", "pathologist", "--org", "Bench Trust",
            "--name", f"Bench {n}", "--password-stdin", stdin="bench-password-not-secret\n",
        )  # fmt: skip
        return run("users", "token", f"bench{n}")

    with ThreadPoolExecutor(4) as pool:
        tokens = [token, *pool.map(person, range(2, people + 1))]
    (data / "bench-people.json").write_text(json.dumps(tokens))
    for i in range(rooms):
        run("cases", "add", f"BENCH-{i}", "--org", "Bench Trust")
    return data, token


def serve_ours(data: Path, token: str, serve_args: Sequence[str] = (), processes: int = 1) -> Target:
    """``processes`` x ``collab serve`` (with ``serve_args``; more than one needs a Redis in
    them) on a data directory made by ``setup_ours``: one room per case."""
    with sqlite3.connect(data / "collab.sqlite3") as db:
        case_ids = [r[0] for r in db.execute("SELECT id FROM cases ORDER BY accession")]
        org = db.execute("SELECT name FROM organisations").fetchone()[0]
        users = {
            r[0]: (r[1], r[2], r[3]) for r in db.execute("SELECT username, id, display_name, role FROM users")
        }
    people: list[tuple[dict[str, str], dict[str, object]]] = []
    tokens_file = data / "bench-people.json"
    tokens = json.loads(tokens_file.read_text()) if tokens_file.exists() else [token]
    for n, person_token in enumerate(tokens, 1):
        user_id, name, role = users["bench" if n == 1 else f"bench{n}"]
        people.append(({"Authorization": f"Bearer {person_token}"}, presence_user(user_id, name, role, org)))
    started = [start_process(data, case_ids, serve_args) for _ in range(processes)]
    process, urls = started[0]
    return Target("ours", process, urls, {"Authorization": f"Bearer {token}"}, data, people, started[1:])


def start_process(
    data: Path, case_ids: list[str], serve_args: Sequence[str]
) -> tuple[subprocess.Popen[bytes], list[str]]:
    """One ``collab serve`` on ``data``, up; with each case's room address."""
    port = free_port()
    process = subprocess.Popen(
        [*COLLAB, "serve", "--data-dir", str(data), "--port", str(port), *serve_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return process, [f"ws://127.0.0.1:{port}/ws/cases/{c}" for c in case_ids]


def start_reference(
    rooms: int, people: list[tuple[dict[str, str], dict[str, object]]] | None = None
) -> Target:
    """The reference server; its clients send the same states as ours did (``people``'s ``user``s),
    so both servers relay, and the one bench process parses, messages of the same size."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    process = subprocess.Popen(REFERENCE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/", process)
    urls = [f"ws://127.0.0.1:{port}/bench-{i}" for i in range(rooms)]
    return Target("reference", process, urls, people=[({}, user) for _, user in people or []])


@dataclass
class Result:
    latencies_ms: list[float]
    delivered: float
    cpu_percent: float

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def summary(self) -> str:
        return (
            f"p50 {self.pct(0.5):.1f} ms, p99 {self.pct(0.99):.1f} ms, "
            f"delivered {100 * self.delivered:.1f}%, CPU {self.cpu_percent:.1f}%"
        )


async def fan_out(
    target: Target, rooms: int, per_room: int, seconds: float, rate: float, run: int = 0
) -> Result:
    """Connect everyone, let each room's first client move its pointer, measure the others.
    Each ``run`` on one server moves a pointer of its own (a new client id, clocks from 1):
    the reference keeps a left client's clock and would ignore a rerun's."""
    latencies: list[float] = []
    received: list[int] = [0]
    conns = []
    user_of: dict[websockets.ClientConnection, dict[str, object] | None] = {}
    for room in range(rooms):
        for _ in range(per_room):
            headers, user = target.person(len(conns))
            ws = await websockets.connect(
                target.urls[room], additional_headers=headers, max_queue=None, compression=None
            )
            user_of[ws] = user
            conns.append((room, ws))
    senders = {room: ws for room, ws in reversed(conns)}  # the first connection of each room

    async def receive(ws: websockets.ClientConnection, is_sender: bool) -> None:
        try:
            async for data in ws:
                if isinstance(data, str):
                    continue
                frame = parse(data)

                if frame.kind != 1 or is_sender:
                    continue
                now = time.perf_counter_ns()
                for entry in parse_awareness(frame.payload):
                    state = json.loads(entry.state_json)
                    if isinstance(state, dict) and "t" in state:
                        latencies.append((now - state["t"]) / 1e6)
                        received[0] += 1
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(receive(ws, ws is senders[room])) for room, ws in conns]
    await asyncio.sleep(1.0)  # let greetings (sync step 1, awareness) settle before measuring
    latencies.clear()
    received[0] = 0
    cpu0 = cpu_seconds(target.process.pid)
    start = time.perf_counter()
    messages = int(seconds * rate)

    async def send(room: int, ws: websockets.ClientConnection) -> None:
        client_id = 1_000_000 + 1_000 * run + room
        for clock in range(1, messages + 1):
            due = start + clock / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            state = {
                "user": user_of[ws] or {"name": f"presenter {room}"},
                "pointer": {"slide": "s1", "x": clock, "y": clock},
                "t": time.perf_counter_ns(),
            }
            await ws.send(encode_awareness([AwarenessEntry(client_id, clock, json.dumps(state))]))

    await asyncio.gather(*(send(room, ws) for room, ws in senders.items()))
    await asyncio.sleep(1.0)  # the last messages arrive
    cpu = cpu_seconds(target.process.pid) - cpu0
    elapsed = time.perf_counter() - start
    for _, ws in conns:
        await ws.close()
    for task in readers:
        task.cancel()
    expected = rooms * (per_room - 1) * messages
    return Result(latencies, received[0] / expected if expected else 0.0, 100 * cpu / elapsed)


def compare(tmp: Path, label: str, rooms: int, per_room: int, args: argparse.Namespace) -> str:
    """Both servers up at once; a short warm-up run on each, not counted; then ``--repeat``
    measured runs each, alternating which goes first. One run's p99 is the worst couple of
    fan-outs, and the one bench process that receives them all is as busy as the server, so
    single runs wander by a third on a small machine: the row gives medians over the runs."""
    ours = start_ours(tmp, rooms)
    try:
        reference = start_reference(rooms, ours.people)
        try:
            runs: dict[str, list[Result]] = {"ours": [], "reference": []}
            for n in range(args.repeat + 1):
                pair = (ours, reference) if n % 2 else (reference, ours)
                for target in pair:
                    seconds = args.seconds if n else min(2.0, args.seconds)  # run 0 warms up
                    result = asyncio.run(fan_out(target, rooms, per_room, seconds, args.rate, run=n))
                    if n:
                        runs[target.name].append(result)
                        print(f"  {label}, run {n}, {target.name}: {result.summary()}", flush=True)
        finally:
            reference.stop()
    finally:
        ours.stop()
    return row(label, runs["ours"], runs["reference"])


def row(label: str, ours: list[Result], ref: list[Result]) -> str:
    """One table row: each figure the median over the runs."""

    def med(results: list[Result], figure: Callable[[Result], float]) -> float:
        return statistics.median(figure(r) for r in results)

    p50, p99 = (lambda r: r.pct(0.5)), (lambda r: r.pct(0.99))
    delivered, cpu = (lambda r: 100 * r.delivered), (lambda r: r.cpu_percent)
    return (
        f"| {label} | {med(ours, p50):.1f} / {med(ours, p99):.1f} "
        f"| {med(ref, p50):.1f} / {med(ref, p99):.1f} "
        f"| {med(ours, p99) / med(ref, p99):.2f}x | {med(ours, delivered):.1f}% / {med(ref, delivered):.1f}% "
        f"| {med(ours, cpu):.1f}% / {med(ref, cpu):.1f}% | {med(ours, cpu) / max(med(ref, cpu), 0.01):.2f}x |"
    )


def with_tile_load(tmp: Path, args: argparse.Namespace) -> None:
    """Pointer fan-out on our server, idle and while 8 clients pull distinct tiles at full speed."""
    from collab.slides.demo import generate_demo_slide

    slide = tmp / "load.tiff"
    generate_demo_slide(slide, l0_width=30_000, l0_height=20_000)
    target = start_ours(tmp, 1)
    try:
        data = target.data_dir
        assert data is not None
        slide_id = add_slide(data, slide)
        port = target.urls[0].split(":")[2].split("/")[0]
        token = target.headers["Authorization"].split()[1]
        grid = [str(v) for v in full_resolution_grid(port, slide_id, token)]
        runs = []
        for _ in range(args.tile_load_repeat):  # alternated, since one run's p99 is noisy
            idle = asyncio.run(fan_out(target, 1, 50, args.seconds, args.rate, run=2 * len(runs)))
            puller = subprocess.Popen(
                [sys.executable, "-c", PULLER, port, slide_id, token, str(args.seconds + 3), *grid],
                stdout=subprocess.PIPE,
                text=True,
            )
            loaded = asyncio.run(fan_out(target, 1, 50, args.seconds, args.rate, run=2 * len(runs) + 1))
            tiles = puller.communicate(timeout=120)[0].strip()
            runs.append((idle, loaded, tiles))
    finally:
        target.stop()
    print("\n### Pointer fan-out (50 clients, one room) on our server, idle and under tile load\n")
    print("| run | condition | p50 / p99 ms | delivered | server CPU |\n|---|---|---|---|---|")
    for n, (idle, loaded, tiles) in enumerate(runs, 1):
        print(
            f"| {n} | idle | {idle.pct(0.5):.1f} / {idle.pct(0.99):.1f} | {100 * idle.delivered:.1f}% "
            f"| {idle.cpu_percent:.1f}% |"
        )
        print(
            f"| {n} | 8 clients pulling cold tiles ({tiles}) "
            f"| {loaded.pct(0.5):.1f} / {loaded.pct(0.99):.1f} "
            f"| {100 * loaded.delivered:.1f}% | {loaded.cpu_percent:.1f}% |"
        )
    idle_p99 = statistics.median(idle.pct(0.99) for idle, _, _ in runs)
    loaded_p99 = statistics.median(loaded.pct(0.99) for _, loaded, _ in runs)
    print(
        f"\nmedian p99 over {len(runs)} runs: idle {idle_p99:.1f} ms, under tile load {loaded_p99:.1f} ms: "
        f"{loaded_p99 / idle_p99:.2f}x"
    )


# Eight keep-alive clients walking distinct tiles of the full-resolution level, until told to
# stop. The level (some 9,000 tiles, more than the tile cache holds) is walked in order and
# again, so requests keep missing the cache. Every answer must be a 200: a wrong address
# would be a cheap 404 and flatter the load.
PULLER = r"""
import asyncio, sys, time
port, slide, token, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
level, cols, rows = (int(v) for v in sys.argv[5:8])
async def client(n, stop, count, bad):
    reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
    i = n
    while time.monotonic() < stop:
        at = i % (cols * rows)
        req = (f"GET /slides/{slide}_files/{level}/{at % cols}_{at // cols}.jpeg HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {token}\r\n\r\n")
        writer.write(req.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            bad[0] += 1
        sizes = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
        length = int(sizes[0].split(b":")[1])
        await reader.readexactly(length)
        count[0] += 1
        i += 8
async def main():
    count, bad = [0], [0]
    stop = time.monotonic() + seconds
    await asyncio.gather(*(client(n, stop, count, bad) for n in range(8)))
    print(f"{count[0] / seconds:.0f} tiles/s" + (f", {bad[0]} NOT 200" if bad[0] else ""))
asyncio.run(main())
"""


def add_slide(data: Path, slide: Path, accession: str = "BENCH-0") -> str:
    """Register a slide file with a case through the CLI; its id."""
    out = subprocess.run(
        [*COLLAB, "slides", "add", str(slide), "--case", accession, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split("\t")[0]


def full_resolution_grid(port: str, slide_id: str, token: str) -> tuple[int, int, int]:
    """(Deep Zoom level, columns, rows) of the slide's full-resolution level, from its DZI."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slides/{slide_id}.dzi", headers={"Authorization": f"Bearer {token}"}
    )
    dzi = urllib.request.urlopen(request, timeout=60).read().decode()
    size = int(dzi.split('TileSize="')[1].split('"')[0])
    width = int(dzi.split('Width="')[1].split('"')[0])
    height = int(dzi.split('Height="')[1].split('"')[0])
    level = math.ceil(math.log2(max(width, height)))
    return level, math.ceil(width / size), math.ceil(height / size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0, help="pointer updates per second per sender")
    parser.add_argument("--sizes", default="10,50,200", help="clients in the one-room scenarios")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per server and scenario")
    parser.add_argument("--no-tile-load", action="store_true")
    parser.add_argument("--tile-load-only", action="store_true", help="only the pointer-under-tile-load run")
    parser.add_argument("--tile-load-repeat", type=int, default=3, help="idle / loaded pairs to run")
    args = parser.parse_args()
    print(f"$ {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(
        f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}, "
        f"node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}"
    )
    scenarios = [] if args.tile_load_only else [(1, int(n)) for n in args.sizes.split(",")] + [(50, 5)]
    lines = []
    with tempfile.TemporaryDirectory(prefix="collab-bench-sync-") as name:
        tmp = Path(name)
        for rooms, per_room in scenarios:
            label = f"1 room x {per_room}" if rooms == 1 else f"{rooms} rooms x {per_room}"
            lines.append(compare(tmp, label, rooms, per_room, args))
            print(lines[-1], flush=True)
        print(f"\n{args.rate:g} Hz for {args.seconds:g} s per sender; latency send -> receive, ms\n")
        print(
            "| scenario | ours p50 / p99 | reference p50 / p99 | p99 ours/ref | delivered ours / ref "
            "| server CPU ours / ref | CPU ours/ref |"
        )
        print("|---|---|---|---|---|---|---|")
        print("\n".join(lines))
        if not args.no_tile_load:
            with_tile_load(tmp, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
