"""Beyond one process: rooms served by two server processes, and pointers under tile load.

    .venv/bin/python bench/scale.py [--seconds 60] [--csv scale.csv]

In one run on this machine, each run on a fresh copy of one data directory:

1. Fan-out across processes. `--rooms` (100) rooms of `--per-room` (10) clients, 1,000
   in all, and 1 room of `--clients` (200): first on one `collab serve`, then on two
   sharing the data directory and a Redis (`collab serve --redis-url`, Debian's
   `redis-server` started here on a free port with no persistence). A room's clients
   alternate between the two processes as a round-robin balancer spreads them, so half
   of every room's receivers are on the other process than its sender. Pointer latency
   (send to receive) p50/p99 over every receiver and over those on the other process,
   and the CPU of both processes, two against one. Target: p99 <= 1.5x one process.
2. Pointers under full tile load, 1 room of `--clients`, one process: `--tile-clients`
   clients pulling uncached tiles at full speed, drawn on the server's threads (the
   default) and then in `--tile-processes` worker processes (`collab serve
   --tile-processes N`); pointer p99 against the same room without tiles. Target <= 2x.
3. Tiles per CPU-second of the server (its workers included) with worker processes,
   against threads, from the same two runs.

The rooms' traffic is bench/load.py's: per room one sender moves its pointer `--rate`
(one room) or `--many-rate` (many rooms) times a second and changes the case's document
every `--doc-every` seconds; every other client receives both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.load import (  # noqa: E402
    Prepared,
    Run,
    fmt,
    prepare,
    pyramid,
    ratio,
    run_load,
    summary_row,
    write_csv,
)
from bench.sync import free_port, serve_ours  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

# Each person may hold 20 live connections (collab.web.live): 1,000 clients need 50 and more.
PEOPLE = 60


@contextlib.contextmanager
def redis(tmp: Path) -> Iterator[str]:
    """A Redis on a free port for the two processes; its URL."""
    server = RedisServer.start(tmp / f"redis-{free_port()}")
    try:
        yield server.url
    finally:
        server.stop()


def one_run(
    prepared: Prepared,
    tmp: Path,
    scenario: str,
    name: str,
    rooms: int,
    per_room: int,
    rate: float,
    args: argparse.Namespace,
    *,
    processes: int = 1,
    redis_url: str | None = None,
    tile_processes: int = 0,
    with_tiles: bool = False,
) -> Run:
    data = Path(tempfile.mkdtemp(prefix="run-", dir=tmp)) / "data"
    shutil.copytree(prepared.data, data)
    serve_args = []
    if redis_url:
        serve_args += ["--redis-url", redis_url]
    if tile_processes:
        serve_args += ["--tile-processes", str(tile_processes)]
    print(f"{scenario}: {name}, {args.seconds:g} s", file=sys.stderr, flush=True)
    target = serve_ours(data, prepared.token, serve_args, processes)
    try:
        tiles = None
        if with_tiles:
            port = target.urls[0].split(":")[2].split("/")[0]
            tiles = (port, pyramid(f"http://127.0.0.1:{port}", prepared.slide_id, prepared.token))
        run_args = argparse.Namespace(**{**vars(args), "rate": rate})
        return asyncio.run(
            run_load(
                target,
                scenario,
                name,
                rooms,
                per_room,
                args.seconds,
                run_args,
                user_id=prepared.user_id,
                slide_id=prepared.slide_id,
                tiles=tiles,
            )
        )
    finally:
        target.stop()


def tiles_per_cpu_second(run: Run) -> float:
    if not run.tiles or "n" not in run.tiles:
        return float("nan")
    cpu = run.samples[-1].server_cpu - run.samples[0].server_cpu
    return run.tiles["n"] / cpu if cpu > 0 else float("nan")


def report(
    fan_out: list[tuple[Run, Run]], idle: Run, threads: Run, workers: Run, args: argparse.Namespace
) -> None:
    print(
        "\n### Every run\n\nLatency send -> receive in ms; CPU in % of one core "
        f"({os.cpu_count()} cores); server CPU and RSS are every server process's, tile workers included.\n"
    )
    print(
        "| scenario | run | min | pointer p50 / p99 | delivered | doc p50 / p99 | doc delivered | tiles/s "
        "| tile p50 / p99 | server CPU | server RSS MB idle / start / 1 min / end | client CPU "
        "| machine CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in [r for pair in fan_out for r in pair] + [threads, workers]:
        print(summary_row(run))

    print("\n### 1. Fan-out across two processes (target: pointer p99 <= 1.5x one process)\n")
    print(
        "| scenario | one process: p50 / p99 | two: p50 / p99 | two, other process only: p50 / p99 "
        "| p99 two / one | server CPU one / two | CPU two / one |"
    )
    print("|---|---|---|---|---|---|---|")
    for single, double in fan_out:
        s50, s99, _ = single.pointer()
        d50, d99, _ = double.pointer()
        f50, f99 = double.pointer_far()
        s_cpu = single.cpu("server_cpu", 0, single.seconds)
        d_cpu = double.cpu("server_cpu", 0, double.seconds)
        print(
            f"| {single.scenario} | {fmt(s50)} / {fmt(s99)} | {fmt(d50)} / {fmt(d99)} "
            f"| {fmt(f50)} / {fmt(f99)} "
            f"| **{ratio(max(d99, f99), s99)}** | {s_cpu:.0f}% / {d_cpu:.0f}% | {ratio(d_cpu, s_cpu)} |"
        )

    print(f"\n### 2. Pointers under full tile load, {idle.scenario} (target: p99 <= 2x idle)\n")
    print("| run | pointer p50 / p99 | p99 / idle | tiles/s | tile p50 / p99 |")
    print("|---|---|---|---|---|")
    _, i99, _ = idle.pointer()
    for run in (idle, threads, workers):
        p50, p99, _ = run.pointer()
        tiles = run.tiles or {}
        rate = f"{tiles['n'] / run.seconds:.0f}" if "n" in tiles else "-"
        latency = f"{fmt(tiles['p50'])} / {fmt(tiles['p99'])}" if "n" in tiles else "-"
        print(f"| {run.name} | {fmt(p50)} / {fmt(p99)} | **{ratio(p99, i99)}** | {rate} | {latency} |")

    print("\n### 3. Tiles per CPU-second of the server, its workers included\n")
    t, w = tiles_per_cpu_second(threads), tiles_per_cpu_second(workers)
    print("| threads | worker processes | workers / threads |")
    print("|---|---|---|")
    print(f"| {t:.0f} | {w:.0f} | {ratio(w, t)} |")

    warnings = []
    for run in [r for pair in fan_out for r in pair] + [threads, workers]:
        warnings += [f"{run.scenario}, {run.name}: {e}" for e in run.errors[:5]]
        if run.tiles and run.tiles.get("errors"):
            warnings.append(f"{run.name}: {run.tiles['errors']} tile requests did not answer 200")
        client = run.cpu("bench_cpu", 0, run.seconds)
        if client > 85:
            warnings.append(
                f"{run.scenario}, {run.name}: the benchmark client used {client:.0f}% of a core: its "
                "latencies include its own queueing"
            )
    if warnings:
        print("\nWarnings:\n\n" + "\n".join(f"- {w}" for w in warnings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="each run")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--per-room", type=int, default=10)
    parser.add_argument("--clients", type=int, default=200, help="clients in the one-room scenario")
    parser.add_argument("--rate", type=float, default=30.0, help="pointer moves per second, one room")
    parser.add_argument("--many-rate", type=float, default=3.0, help="pointer moves per second per room")
    parser.add_argument("--doc-every", type=float, default=3.0, help="seconds between document changes")
    parser.add_argument("--keep", type=int, default=20, help="annotations each sender keeps")
    parser.add_argument("--tile-clients", type=int, default=8)
    parser.add_argument("--tile-processes", type=int, default=2)
    parser.add_argument("--slide-size", default="60000x40000", help="generated slide, level-0 W x H")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per window (the CSV)")
    parser.add_argument("--sample-every", type=float, default=1.0, help="seconds between CPU samples")
    parser.add_argument("--csv", type=Path, help="write the per-window series here")
    args = parser.parse_args()

    print(f"$ {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    many, one = f"{args.rooms} rooms x {args.per_room}", f"1 room x {args.clients}"
    with tempfile.TemporaryDirectory(prefix="collab-bench-scale-") as name:
        tmp = Path(name)
        from collab.slides.demo import generate_demo_slide

        width, height = (int(v) for v in args.slide_size.lower().split("x"))
        slide = tmp / f"scale-{width}x{height}.tiff"
        began = time.perf_counter()
        generate_demo_slide(slide, l0_width=width, l0_height=height)
        print(
            f"slide {width} x {height}: {slide.stat().st_size / 1e6:.0f} MB, "
            f"{time.perf_counter() - began:.0f} s"
        )
        fan_out = []
        idle = None
        for scenario, rooms, per_room, rate in ((many, args.rooms, args.per_room, args.many_rate),
                                                (one, 1, args.clients, args.rate)):  # fmt: skip
            prepared = prepare(tmp, rooms, slide, PEOPLE)
            single = one_run(prepared, tmp, scenario, "one process", rooms, per_room, rate, args)
            with redis(tmp) as url:
                double = one_run(
                    prepared,
                    tmp,
                    scenario,
                    "two processes",
                    rooms,
                    per_room,
                    rate,
                    args,
                    processes=2,
                    redis_url=url,
                )
            fan_out.append((single, double))
            if rooms == 1:
                idle = single
                threads = one_run(
                    prepared,
                    tmp,
                    scenario,
                    "one process + tiles, threads",
                    1,
                    per_room,
                    rate,
                    args,
                    with_tiles=True,
                )
                workers = one_run(
                    prepared, tmp, scenario, f"one process + tiles, {args.tile_processes} tile processes",
                    1, per_room, rate, args, tile_processes=args.tile_processes, with_tiles=True,
                )  # fmt: skip
    assert idle is not None
    report(fan_out, idle, threads, workers, args)
    if args.csv:
        write_csv(args.csv, [r for pair in fan_out for r in pair] + [threads, workers])
        print(f"\nper-window series: {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
