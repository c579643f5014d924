"""Load over minutes: pointer and document fan-out while tiles are pulled at full speed.

    .venv/bin/python bench/load.py [--minutes 5] [--reference-minutes 1] [--csv load.csv]

Two scenarios: one room of `--clients` (200), and `--rooms` (50) rooms of `--per-room`
(5). In each room one sender moves its pointer (awareness) `--rate` times a second and,
every `--doc-every` seconds, changes the case's document as the viewer does: it adds an
annotation carrying its own user id as author, or relabels one of its own (beyond
`--keep` annotations it deletes its oldest in the same change). Every other client in
the room receives both. Meanwhile `--tile-clients` (8) other clients, in a process of
their own, pull distinct tiles of a generated slide over keep-alive HTTP as fast as
they are served, walking its whole pyramid over and over; the default slide's pyramid
(about 180 MB of JPEG) is larger than the server's 128 MB tile cache, so the tiles are
never in it (the file is in the page cache).

Each scenario runs `--minutes` on a fresh `collab serve` with default settings. Per
`--window` seconds: pointer and document latency (send to receive, in the benchmark
process) p50/p99 and share delivered, tiles/s and tile latency p50/p99, the server's
CPU (percent of one core) and RSS (VmRSS), and the CPU of the benchmark client, of the
tile puller and of the whole machine. Then whether the server's RSS levels off.

The reference, in the same run: the same clients and messages for `--reference-minutes`,
without tiles (the reference serves none), against `@y/websocket-server` 0.1.1 (npm;
it relays every update unchecked) and against ours, with ratios ours / reference.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import csv
import json
import math
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websockets
from pycrdt import Doc, Map, YMessageType, YSyncMessageType, create_sync_message, create_update_message

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.sync import (  # noqa: E402
    PEOPLE,
    Target,
    add_slide,
    cpu_seconds,
    serve_ours,
    setup_ours,
    start_reference,
)
from collab.sync.protocol import AwarenessEntry, encode_awareness, parse, parse_awareness  # noqa: E402

# A document change is recognised on arrival by the label it sets: "... #<room>.<seq>#".
MARK = re.compile(rb"#(\d+)\.(\d+)#")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def pct(values: Any, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------- the tile puller

# Keep-alive clients walking every tile of the pyramid (full resolution first), each
# taking every n-th, over and over until `end` (time.monotonic(), the same clock as the
# parent's on Linux). Latency is binned by the request's start into windows from `start`.
PULLER = r"""
import array, asyncio, json, sys, time
port, slide, token = sys.argv[1], sys.argv[2], sys.argv[3]
start, end, window, clients = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
levels = json.loads(sys.argv[8])
tiles = [(z, c, r) for z, cols, rows in levels for r in range(rows) for c in range(cols)]
lat, errors, count = {}, {}, [0]
async def client(n):
    reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
    i = n
    while True:
        t = time.monotonic()
        if t >= end:
            break
        z, c, r = tiles[i % len(tiles)]
        writer.write((f"GET /slides/{slide}_files/{z}/{c}_{r}.jpeg HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        sizes = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
        await reader.readexactly(int(sizes[0].split(b":")[1]))
        done = time.monotonic()
        count[0] += 1
        if t >= start:
            w = int((t - start) // window)
            lat.setdefault(w, array.array("d")).append((done - t) * 1000)
            if head.split(b" ", 2)[1] != b"200":
                errors[w] = errors.get(w, 0) + 1
        i += clients
async def main():
    await asyncio.gather(*(client(n) for n in range(clients)))
    def stats(values):
        ordered = sorted(values)
        at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None
        return {"n": len(ordered), "p50": at(0.5), "p99": at(0.99)}
    everything = array.array("d")
    for values in lat.values():
        everything.extend(values)
    out = {"windows": {w: {**stats(v), "errors": errors.get(w, 0)} for w, v in lat.items()},
           **stats(everything), "errors": sum(errors.values()), "tiles": len(tiles), "requests": count[0]}
    print(json.dumps(out))
asyncio.run(main())
"""


def pyramid(base: str, slide_id: str, token: str) -> list[list[int]]:
    """[[level, columns, rows], ...] of the slide's Deep Zoom pyramid, full resolution first."""
    request = urllib.request.Request(
        f"{base}/slides/{slide_id}.dzi", headers={"Authorization": f"Bearer {token}"}
    )
    dzi = urllib.request.urlopen(request, timeout=60).read().decode()
    size = int(re.search(r'TileSize="(\d+)"', dzi)[1])  # type: ignore[index]
    w, h = int(re.search(r'Width="(\d+)"', dzi)[1]), int(re.search(r'Height="(\d+)"', dzi)[1])  # type: ignore[index]
    dims = [(w, h)]
    while dims[-1] != (1, 1):
        dims.append((max(1, math.ceil(dims[-1][0] / 2)), max(1, math.ceil(dims[-1][1] / 2))))
    top = len(dims) - 1
    return [[top - k, math.ceil(dw / size), math.ceil(dh / size)] for k, (dw, dh) in enumerate(dims)]


# ---------------------------------------------------------------- one timed run


@dataclass
class Bin:
    """What was sent in one window and how it arrived (binned by send time)."""

    pointer: array.array[float] = field(default_factory=lambda: array.array("d"))
    pointer_far: array.array[float] = field(default_factory=lambda: array.array("d"))  # other process
    pointer_sent: int = 0
    doc: array.array[float] = field(default_factory=lambda: array.array("d"))
    doc_sent: int = 0
    doc_got: int = 0


@dataclass
class Sample:
    t: float  # seconds since the run started
    server_cpu: float  # cumulative CPU seconds
    server_rss: float  # MB
    bench_cpu: float
    puller_cpu: float
    machine: tuple[int, int]


@dataclass
class Run:
    scenario: str
    name: str  # "ours + tiles", "ours", "reference"
    seconds: float
    window: float
    receivers: int  # per room: clients - 1
    bins: list[Bin]
    samples: list[Sample]
    tiles: dict[str, Any] | None
    rss_before: float  # MB, server started, nobody connected
    errors: list[str]

    def windows(self) -> list[tuple[float, float]]:
        edges = [min(self.seconds, k * self.window) for k in range(len(self.bins) + 1)]
        return list(zip(edges, edges[1:], strict=False))

    def sample_at(self, t: float) -> Sample:
        return min(self.samples, key=lambda s: abs(s.t - t))

    def cpu(self, attr: str, a: float, b: float) -> float:
        s0, s1 = self.sample_at(a), self.sample_at(b)
        return 100 * (getattr(s1, attr) - getattr(s0, attr)) / max(s1.t - s0.t, 1e-9)

    def machine_cpu(self, a: float, b: float) -> float:
        (busy0, total0), (busy1, total1) = self.sample_at(a).machine, self.sample_at(b).machine
        return 100 * (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)

    def pointer(self, bins: list[Bin] | None = None) -> tuple[float, float, float]:
        """p50, p99 (ms) and share delivered of the pointer moves."""
        chosen = self.bins if bins is None else bins
        values = array.array("d")
        for b in chosen:
            values.extend(b.pointer)
        expected = self.receivers * sum(b.pointer_sent for b in chosen)
        return pct(values, 0.5), pct(values, 0.99), len(values) / expected if expected else float("nan")

    def pointer_far(self) -> tuple[float, float]:
        """p50 and p99 (ms) of the pointer moves that crossed to another server process."""
        values = array.array("d")
        for b in self.bins:
            values.extend(b.pointer_far)
        return pct(values, 0.5), pct(values, 0.99)

    def doc(self, bins: list[Bin] | None = None) -> tuple[float, float, float]:
        chosen = self.bins if bins is None else bins
        values = array.array("d")
        for b in chosen:
            values.extend(b.doc)
        expected = self.receivers * sum(b.doc_sent for b in chosen)
        return (
            pct(values, 0.5),
            pct(values, 0.99),
            sum(b.doc_got for b in chosen) / expected if expected else float("nan"),
        )


async def run_load(
    target: Target,
    scenario: str,
    name: str,
    rooms: int,
    per_room: int,
    seconds: float,
    args: argparse.Namespace,
    *,
    user_id: int,
    slide_id: str,
    tiles: tuple[str, list[list[int]]] | None = None,  # (port, pyramid) to pull tiles from
) -> Run:
    """Connect everyone, then for `seconds`: pointers, document changes, and tiles if asked."""
    rss_before = sum(rss_mb(p) for p in target.pids)
    n_windows = max(1, math.ceil(seconds / args.window - 1e-9))
    bins = [Bin() for _ in range(n_windows)]
    window_ns = int(args.window * 1e9)
    sent_at: dict[tuple[int, int], int] = {}  # (room, seq) -> perf_counter_ns of the send
    errors: list[str] = []
    t0_ns = 0  # set when the clock starts; nothing before it is counted

    conns: list[tuple[int, websockets.ClientConnection]] = []
    far: set[websockets.ClientConnection] = set()  # on another server process than the room's sender
    for room in range(rooms):
        for n in range(per_room):
            headers, _ = target.person(len(conns))  # the server caps connections per person
            ws = await websockets.connect(
                target.url(room, n), additional_headers=headers, max_queue=None, compression=None
            )
            conns.append((room, ws))
            if target.place(n) != target.place(0):
                far.add(ws)
    senders = {room: ws for room, ws in reversed(conns)}  # the first connection of each room
    # Each sender writes annotations as the person it connected as (the server checks authors).
    authors: dict[int, int] = {}
    for index, (room, ws) in enumerate(conns):
        if senders[room] is ws:
            _, user = target.person(index)
            authors[room] = int(user["id"]) if user else user_id
    docs: dict[int, Doc[Any]] = {room: Doc() for room in senders}

    def bin_of(sent_ns: int) -> Bin | None:
        w = (sent_ns - t0_ns) // window_ns if t0_ns else -1
        return bins[w] if 0 <= w < n_windows else None

    async def receive(room: int, ws: websockets.ClientConnection, is_sender: bool) -> None:
        try:
            async for data in ws:
                if isinstance(data, str):
                    continue
                now = time.perf_counter_ns()
                frame = parse(data)
                if frame.kind == YMessageType.AWARENESS:
                    if is_sender:
                        continue
                    for entry in parse_awareness(frame.payload):
                        state = json.loads(entry.state_json)
                        if isinstance(state, dict) and "t" in state and (b := bin_of(state["t"])):
                            b.pointer.append((now - state["t"]) / 1e6)
                            if ws in far:
                                b.pointer_far.append((now - state["t"]) / 1e6)
                elif frame.kind == YMessageType.SYNC:
                    if is_sender:  # keep the sender's document in step, as a real client does
                        if frame.sync_kind != YSyncMessageType.SYNC_STEP1:
                            docs[room].apply_update(frame.payload)
                        continue
                    if frame.sync_kind == YSyncMessageType.SYNC_UPDATE and (m := MARK.search(frame.payload)):
                        sent = sent_at.get((int(m[1]), int(m[2])))
                        if sent is not None and (b := bin_of(sent)):
                            b.doc.append((now - sent) / 1e6)
                            b.doc_got += 1
        except websockets.ConnectionClosed as exc:
            if is_sender or not stopping:
                errors.append(
                    f"room {room}: connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
                )

    stopping = False
    readers = [asyncio.create_task(receive(room, ws, ws is senders[room])) for room, ws in conns]
    for room, ws in senders.items():
        await ws.send(create_sync_message(docs[room]))  # sync step 1: the server answers with the document
    await asyncio.sleep(1.0)  # greetings settle

    puller = None
    if tiles is not None:
        port, levels = tiles
        lead = 2.0  # the puller starts (and its clients connect) before the clock does
        start_mono = time.monotonic() + lead
        puller = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PULLER,
                port,
                slide_id,
                target.headers["Authorization"].split()[1],
                str(start_mono),
                str(start_mono + seconds),
                str(args.window),
                str(args.tile_clients),
                json.dumps(levels),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        await asyncio.sleep(max(0.0, start_mono - time.monotonic()))

    t0 = time.perf_counter()
    t0_ns = time.perf_counter_ns()
    samples: list[Sample] = []
    puller_cpu = [0.0]

    def sample(t: float) -> Sample:
        if puller is not None:
            with contextlib.suppress(OSError, IndexError):  # it may have just finished
                puller_cpu[0] = cpu_seconds(puller.pid)
        return Sample(
            t,
            sum(tree_cpu_seconds(p) for p in target.pids),
            sum(rss_mb(p) for p in target.pids),
            cpu_seconds(os.getpid()),
            puller_cpu[0],
            machine_jiffies(),
        )

    run = Run(scenario, name, seconds, args.window, per_room - 1, bins, samples, None, rss_before, errors)

    async def monitor() -> None:
        steps = max(1, math.ceil(args.window / args.sample_every - 1e-9))
        dt = args.window / steps  # samples fall on the window edges
        times = [k * dt for k in range(int(seconds / dt) + 1) if k * dt < seconds - 1e-6] + [seconds]
        for k, t in enumerate(times):
            await asyncio.sleep(max(0.0, t0 + t - time.perf_counter()))
            samples.append(sample(time.perf_counter() - t0))
            if k and (k % steps == 0 or t == seconds):  # a window is over: a line of progress
                a = run.sample_at(t - args.window).t
                print(
                    f"  [{scenario}, {name}] {t:4.0f} s: server CPU {run.cpu('server_cpu', a, t):.0f}%, "
                    f"RSS {samples[-1].server_rss:.0f} MB; client CPU {run.cpu('bench_cpu', a, t):.0f}%",
                    file=sys.stderr,
                    flush=True,
                )

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    messages = int(seconds * args.rate)

    async def drive(room: int, ws: websockets.ClientConnection) -> None:
        doc = docs[room]
        annotations: Map[Any] = doc.get("annotations", type=Map)
        mine: list[str] = []
        next_change = t0 + args.doc_every * (room + 1) / rooms  # spread over the rooms
        seq = 0
        for clock in range(1, messages + 1):
            due = t0 + clock / args.rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() >= next_change:
                seq += 1
                update = change(doc, annotations, mine, room, seq, authors[room], slide_id, stamp, args.keep)
                sent_at[(room, seq)] = time.perf_counter_ns()
                if b := bin_of(sent_at[(room, seq)]):
                    b.doc_sent += 1
                await ws.send(create_update_message(update))
                next_change += args.doc_every
            sent = time.perf_counter_ns()
            state = {
                "user": {"name": f"presenter {room}"},
                "pointer": {"slide": slide_id, "x": clock, "y": clock},
                "t": sent,
            }
            if b := bin_of(sent):
                b.pointer_sent += 1
            await ws.send(encode_awareness([AwarenessEntry(doc.client_id, clock, json.dumps(state))]))

    watcher = asyncio.create_task(monitor())
    await asyncio.gather(*(drive(room, ws) for room, ws in senders.items()))
    await watcher
    await asyncio.sleep(1.0)  # the last messages arrive
    stopping = True
    tile_stats = None
    if puller is not None:
        out = (await asyncio.to_thread(puller.communicate, timeout=300))[0].strip()
        tile_stats = (
            json.loads(out.splitlines()[-1]) if out else {"error": f"puller exited {puller.returncode}"}
        )
    for _, ws in conns:
        await ws.close()
    for task in readers:
        task.cancel()
    run.tiles = tile_stats
    return run


def change(
    doc: Doc[Any],
    annotations: Map[Any],
    mine: list[str],
    room: int,
    seq: int,
    user_id: int,
    slide_id: str,
    stamp: str,
    keep: int,
) -> bytes:
    """One document change as the viewer makes it: add an annotation of one's own (every
    third change, or when one has none), else relabel one's own; beyond `keep`, delete the
    oldest of one's own in the same transaction. Returns the update."""
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    try:
        with doc.transaction():
            label = f"region {seq} #{room}.{seq}#"
            if seq % 3 == 1 or not mine:
                key = str(uuid.uuid4())
                x, y = 1000 + 37 * seq, 2000 + 23 * seq
                annotations[key] = Map(
                    {
                        "slide": slide_id,
                        "kind": "rect",
                        "points": [[float(x), float(y)], [float(x + 400), float(y + 300)]],
                        "label": label,
                        "color": "#e91e63",
                        "author": str(user_id),
                        "authorName": "Bench Pathologist",
                        "created": stamp,
                        "updated": stamp,
                    }
                )
                mine.append(key)
                if len(mine) > keep:
                    del annotations[mine.pop(0)]
            else:
                annotation = annotations[mine[seq % len(mine)]]
                annotation["label"] = label
                annotation["updated"] = stamp
    finally:
        doc.unobserve(subscription)
    assert len(updates) == 1, updates
    return updates[0]


# ---------------------------------------------------------------- reporting


def share(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def fmt(value: float, digits: int = 1) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def tile_window(run: Run, w: int) -> dict[str, Any]:
    if not run.tiles or "windows" not in run.tiles:
        return {}
    return run.tiles["windows"].get(str(w), {})


def window_rows(run: Run) -> list[dict[str, Any]]:
    rows = []
    for w, (a, b) in enumerate(run.windows()):
        p50, p99, delivered = run.pointer([run.bins[w]])
        d50, d99, d_delivered = run.doc([run.bins[w]])
        tw = tile_window(run, w)
        rows.append(
            {
                "scenario": run.scenario,
                "run": run.name,
                "from_s": round(a, 1),
                "to_s": round(b, 1),
                "pointer_n": len(run.bins[w].pointer),
                "pointer_p50_ms": p50,
                "pointer_p99_ms": p99,
                "pointer_delivered": delivered,
                "doc_n": run.bins[w].doc_got,
                "doc_p50_ms": d50,
                "doc_p99_ms": d99,
                "doc_delivered": d_delivered,
                "tiles_per_s": tw["n"] / (b - a) if tw else None,
                "tile_p50_ms": tw.get("p50") if tw else None,
                "tile_p99_ms": tw.get("p99") if tw else None,
                "tile_errors": tw.get("errors") if tw else None,
                "server_cpu_pct": run.cpu("server_cpu", a, b),
                "server_rss_mb": run.sample_at(b).server_rss,
                "bench_cpu_pct": run.cpu("bench_cpu", a, b),
                "puller_cpu_pct": run.cpu("puller_cpu", a, b) if run.tiles else None,
                "machine_cpu_pct": run.machine_cpu(a, b),
            }
        )
    return rows


def print_windows(run: Run) -> None:
    print(f"\n#### {run.scenario}, {run.name}: per {run.window:g}-s window\n")
    print(
        "| window s | pointer p50 / p99 ms | delivered | document p50 / p99 ms | doc delivered "
        "| tiles/s | tile p50 / p99 ms | server CPU | server RSS MB | client CPU | puller CPU | machine CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in window_rows(run):
        tiles = "-" if r["tiles_per_s"] is None else f"{r['tiles_per_s']:.0f}"
        tile_lat = "-" if r["tile_p99_ms"] is None else f"{fmt(r['tile_p50_ms'])} / {fmt(r['tile_p99_ms'])}"
        if r["tile_errors"]:
            tile_lat += f" ({r['tile_errors']} failed)"
        puller = "-" if r["puller_cpu_pct"] is None else f"{r['puller_cpu_pct']:.0f}%"
        print(
            f"| {r['from_s']:g}-{r['to_s']:g} | {fmt(r['pointer_p50_ms'])} / {fmt(r['pointer_p99_ms'])} "
            f"| {share(r['pointer_delivered'])} | {fmt(r['doc_p50_ms'])} / {fmt(r['doc_p99_ms'])} "
            f"| {share(r['doc_delivered'])} | {tiles} | {tile_lat} | {r['server_cpu_pct']:.0f}% "
            f"| {r['server_rss_mb']:.0f} | {r['bench_cpu_pct']:.0f}% | {puller} "
            f"| {r['machine_cpu_pct']:.0f}% |"
        )


def memory_verdict(run: Run) -> tuple[str, str]:
    """('levels off' / 'still growing', the numbers it rests on) from the RSS samples."""
    half = run.seconds / 2
    mid = run.sample_at(half)
    late = [s for s in run.samples if s.t >= mid.t]
    growth = max(s.server_rss for s in late) - mid.server_rss
    n = len(late)
    mean_t = sum(s.t for s in late) / n
    mean_r = sum(s.server_rss for s in late) / n
    var_t = sum((s.t - mean_t) ** 2 for s in late)
    slope = 60 * sum((s.t - mean_t) * (s.server_rss - mean_r) for s in late) / var_t if var_t else 0.0
    ok = growth < 10 or growth < 0.05 * mid.server_rss
    numbers = (
        f"RSS {mid.server_rss:.0f} MB at {mid.t / 60:.1f} min, highest after that "
        f"{mid.server_rss + growth:.0f} MB: +{growth:.1f} MB ({100 * growth / mid.server_rss:+.1f}%) "
        f"over the second half; slope there {slope:+.1f} MB/min (levels off: under +10 MB or +5%)"
    )
    return ("levels off" if ok else "still growing"), numbers


def summary_row(run: Run) -> str:
    p50, p99, delivered = run.pointer()
    d50, d99, d_delivered = run.doc()
    if run.tiles and "n" in run.tiles:
        tiles = f"{run.tiles['n'] / run.seconds:.0f} | {fmt(run.tiles['p50'])} / {fmt(run.tiles['p99'])}"
    else:
        tiles = "- | -"
    minute = run.sample_at(60).server_rss if run.seconds >= 60 else float("nan")
    return (
        f"| {run.scenario} | {run.name} | {run.seconds / 60:.2g} | {fmt(p50)} / {fmt(p99)} "
        f"| {share(delivered)} "
        f"| {fmt(d50)} / {fmt(d99)} | {share(d_delivered)} | {tiles} "
        f"| {run.cpu('server_cpu', 0, run.seconds):.1f}% "
        f"| {run.rss_before:.0f} / {run.samples[0].server_rss:.0f} / {fmt(minute, 0)} "
        f"/ {run.samples[-1].server_rss:.0f} "
        f"| {run.cpu('bench_cpu', 0, run.seconds):.0f}% | {run.machine_cpu(0, run.seconds):.0f}% |"
    )


def walk(scenario: str, tiles: dict[str, Any]) -> str:
    requests, pyramid_tiles = tiles.get("requests", 0), max(tiles.get("tiles", 1), 1)
    return (
        f"{scenario}: {requests:,} requests over a pyramid of {pyramid_tiles:,} tiles "
        f"({requests / pyramid_tiles:.1f} passes)"
    )


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of the server and its live children (tile worker processes, when it has some)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError, IndexError):
                total += cpu_seconds(int(child))
    return total


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print(
        f"\n### Summary\n\nPointer {args.rate:g} Hz per sender; a document change every {args.doc_every:g} s "
        f"per room; latency send -> receive in ms. Tiles: {args.tile_clients} clients at full speed, only in "
        "the runs marked '+ tiles' (the reference serves no tiles). CPU in % of one core "
        f"({os.cpu_count()} cores: {100 * (os.cpu_count() or 1)}% is the whole machine).\n"
    )
    print(
        "| scenario | run | min | pointer p50 / p99 | delivered | doc p50 / p99 | doc delivered | tiles/s "
        "| tile p50 / p99 | server CPU | server RSS MB idle / start / 1 min / end | client CPU "
        "| machine CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(summary_row(run))

    loaded = [r for r in runs if r.tiles is not None]
    if loaded:
        print("\n### Memory: does the server's RSS level off?\n")
        for run in loaded:
            verdict, numbers = memory_verdict(run)
            print(f"- {run.scenario}, {run.name}: **{verdict}**: {numbers}.")
        print(
            "\nRSS idle: server up, no client yet; start: clients connected and the tile puller running "
            "for 2 s. The tile walk, per run: "
            + "; ".join(walk(r.scenario, r.tiles) for r in loaded if r.tiles)
            + "."
        )

    by_scenario: dict[str, dict[str, Run]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario, {})[run.name] = run
    if any("reference" in r for r in by_scenario.values()):
        print(
            "\n### Ours against the reference\n\n'ours / ref' compares like with like: both without "
            "tiles, same clients, messages and duration. '+ tiles / ref' is ours carrying the tile load "
            "against the reference without it.\n"
        )
        print(
            "| scenario | ours / ref: pointer p50 | p99 | doc p99 | server CPU | RSS at end "
            "| ours + tiles / ref: pointer p50 | p99 | doc p99 |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for scenario, named in by_scenario.items():
            ref = named.get("reference")
            if ref is None:
                continue
            idle, busy = named.get("ours"), named.get("ours + tiles")
            r50, r99, _ = ref.pointer()
            rd99 = ref.doc()[1]
            cells = []
            if idle is not None:
                o50, o99, _ = idle.pointer()
                cells += [
                    ratio(o50, r50),
                    ratio(o99, r99),
                    ratio(idle.doc()[1], rd99),
                    ratio(idle.cpu("server_cpu", 0, idle.seconds), ref.cpu("server_cpu", 0, ref.seconds)),
                    ratio(idle.samples[-1].server_rss, ref.samples[-1].server_rss),
                ]
            else:
                cells += ["-"] * 5
            if busy is not None:
                b50, b99, _ = busy.pointer()
                cells += [ratio(b50, r50), ratio(b99, r99), ratio(busy.doc()[1], rd99)]
            else:
                cells += ["-"] * 3
            print(f"| {scenario} | " + " | ".join(cells) + " |")

    warnings = []
    for run in runs:
        for e in run.errors[:5]:
            warnings.append(f"{run.scenario}, {run.name}: {e}")
        if run.tiles and run.tiles.get("errors"):
            warnings.append(
                f"{run.scenario}, {run.name}: {run.tiles['errors']} tile requests did not answer 200"
            )
        if run.tiles and "error" in run.tiles:
            warnings.append(f"{run.scenario}, {run.name}: tile puller failed: {run.tiles['error']}")
        client = run.cpu("bench_cpu", 0, run.seconds)
        if client > 85:
            warnings.append(
                f"{run.scenario}, {run.name}: the benchmark client used {client:.0f}% of a core: "
                "it is CPU-bound, and its latencies include its own queueing"
            )
        others = (
            run.machine_cpu(0, run.seconds)
            - run.cpu("server_cpu", 0, run.seconds)
            - client
            - (run.cpu("puller_cpu", 0, run.seconds) if run.tiles else 0)
        )
        if others > 15:
            warnings.append(
                f"{run.scenario}, {run.name}: other processes used {others:.0f}% of a core during the run"
            )
    if warnings:
        print("\nWarnings:\n\n" + "\n".join(f"- {w}" for w in warnings))
    print("\n### Per window\n\nServer RSS at the end of each window; CPU in % of one core.")
    for run in runs:
        print_windows(run)


def write_csv(path: Path, runs: list[Run]) -> None:
    rows = [row for run in runs for row in window_rows(run)]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()})


# ---------------------------------------------------------------- main


@dataclass
class Prepared:
    """A data directory to copy for each run of ours, with what the clients need."""

    data: Path
    token: str
    user_id: int
    slide_id: str


def prepare(tmp: Path, rooms: int, slide: Path, people: int = PEOPLE) -> Prepared:
    data, token = setup_ours(tmp, rooms, people)
    slide_id = add_slide(data, slide)
    with sqlite3.connect(data / "collab.sqlite3") as db:
        user_id = int(db.execute("SELECT id FROM users WHERE username = 'bench'").fetchone()[0])
    return Prepared(data, token, user_id, slide_id)


def run_ours(
    prepared: Prepared,
    tmp: Path,
    scenario: str,
    rooms: int,
    per_room: int,
    seconds: float,
    args: argparse.Namespace,
    with_tiles: bool,
    tile_processes: int = 0,
) -> Run:
    data = Path(tempfile.mkdtemp(prefix="run-", dir=tmp)) / "data"
    shutil.copytree(prepared.data, data)
    serve_args = ["--tile-processes", str(tile_processes)] if tile_processes else []
    target = serve_ours(data, prepared.token, serve_args)
    try:
        tiles = None
        if with_tiles:
            port = target.urls[0].split(":")[2].split("/")[0]
            tiles = (port, pyramid(f"http://127.0.0.1:{port}", prepared.slide_id, prepared.token))
        name = "ours + tiles" if with_tiles else "ours"
        if tile_processes:
            name += f", {tile_processes} tile processes"
        return asyncio.run(
            run_load(
                target,
                scenario,
                name,
                rooms,
                per_room,
                seconds,
                args,
                user_id=prepared.user_id,
                slide_id=prepared.slide_id,
                tiles=tiles,
            )
        )
    finally:
        target.stop()


def run_reference(
    scenario: str, rooms: int, per_room: int, seconds: float, args: argparse.Namespace, prepared: Prepared
) -> Run:
    target = start_reference(rooms)
    try:
        return asyncio.run(
            run_load(
                target,
                scenario,
                "reference",
                rooms,
                per_room,
                seconds,
                args,
                user_id=prepared.user_id,
                slide_id=prepared.slide_id,
            )
        )
    finally:
        target.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="each scenario on ours, with tile load")
    parser.add_argument(
        "--reference-minutes",
        type=float,
        default=1.0,
        help="each scenario, no tiles, on the reference and ours",
    )
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--no-ours-without-tiles", action="store_true", help="skip ours without tiles")
    parser.add_argument(
        "--scenarios", default="one,many", help="one: 1 room x --clients; many: --rooms x --per-room"
    )
    parser.add_argument("--clients", type=int, default=200, help="clients in the one-room scenario")
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--per-room", type=int, default=5)
    parser.add_argument("--rate", type=float, default=30.0, help="pointer moves per second per sender")
    parser.add_argument(
        "--doc-every", type=float, default=3.0, help="seconds between document changes per room"
    )
    parser.add_argument("--keep", type=int, default=20, help="annotations each sender keeps")
    parser.add_argument("--tile-clients", type=int, default=8)
    parser.add_argument(
        "--tile-processes",
        type=int,
        default=0,
        help="also run ours + tiles with tiles drawn in N worker processes (collab serve --tile-processes N)",
    )
    parser.add_argument("--slide-size", default="60000x40000", help="generated slide, level-0 W x H")
    parser.add_argument("--slide", type=Path, help="pull tiles of this slide instead of generating one")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per reported window")
    parser.add_argument("--sample-every", type=float, default=1.0, help="seconds between CPU/RSS samples")
    parser.add_argument("--csv", type=Path, help="write the per-window series here")
    args = parser.parse_args()

    print(f"$ {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    print(f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}, node {node}, {when}")
    scenarios = []
    for key in args.scenarios.split(","):
        if key == "one":
            scenarios.append((f"1 room x {args.clients}", 1, args.clients))
        elif key == "many":
            scenarios.append((f"{args.rooms} rooms x {args.per_room}", args.rooms, args.per_room))
        else:
            parser.error(f"unknown scenario {key!r}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="collab-bench-load-") as name:
        tmp = Path(name)
        from collab.slides.demo import generate_demo_slide

        if args.slide:
            slide = args.slide.resolve()
            print(f"slide {slide}: {slide.stat().st_size / 1e6:.0f} MB", flush=True)
        else:
            width, height = (int(v) for v in args.slide_size.lower().split("x"))
            slide = tmp / f"load-{width}x{height}.tiff"
            began = time.perf_counter()
            generate_demo_slide(slide, l0_width=width, l0_height=height)
            print(
                f"slide {width} x {height} (generated): {slide.stat().st_size / 1e6:.0f} MB, in "
                f"{time.perf_counter() - began:.0f} s",
                flush=True,
            )
        for scenario, rooms, per_room in scenarios:
            prepared = prepare(tmp, rooms, slide)
            print(f"{scenario}: ours + tiles for {args.minutes:g} min", file=sys.stderr, flush=True)
            runs.append(run_ours(prepared, tmp, scenario, rooms, per_room, args.minutes * 60, args, True))
            if args.tile_processes:
                processes = args.tile_processes
                print(f"{scenario}: ours + tiles in {processes} processes", file=sys.stderr, flush=True)
                seconds = args.minutes * 60
                runs.append(
                    run_ours(prepared, tmp, scenario, rooms, per_room, seconds, args, True, processes)
                )
            if not args.no_reference and args.reference_minutes > 0:
                seconds = args.reference_minutes * 60
                if not args.no_ours_without_tiles:
                    print(
                        f"{scenario}: ours, no tiles, {args.reference_minutes:g} min",
                        file=sys.stderr,
                        flush=True,
                    )
                    runs.append(run_ours(prepared, tmp, scenario, rooms, per_room, seconds, args, False))
                print(f"{scenario}: reference, {args.reference_minutes:g} min", file=sys.stderr, flush=True)
                runs.append(run_reference(scenario, rooms, per_room, seconds, args, prepared))
    report(runs, args)
    if args.csv:
        write_csv(args.csv, runs)
        print(f"\nper-window series: {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
