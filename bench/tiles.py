"""Benchmark: Deep Zoom tiles/s of a real `collab serve` against openslide's DeepZoomGenerator.

For each slide the tile set is every tile of the two largest Deep Zoom levels, in the geometry the
server reports. The reference renders the set in-process with openslide-python + Pillow (JPEG q75)
on 1 and 2 threads; ours fetches it over HTTP from a fresh server process with N keep-alive clients,
cold (fresh process) then warm (same process again). Ends with a markdown table.

    .venv/bin/python bench/tiles.py [--slides PATH ...] [--clients 8] [--threads-ref 1,2]
                                    [--demo [--demo-size WxH]] [--walk-demo]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import openslide
from openslide.deepzoom import DeepZoomGenerator

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "slides"
COLLAB = [sys.executable, "-m", "collab"]
Tile = tuple[int, int, int]  # (level, col, row)


@dataclass
class Pass:
    """One HTTP pass over a tile set."""

    latencies: list[float]  # seconds, one per tile
    seconds: float
    bytes: int  # total body bytes received
    failures: list[str]
    client_cpu: float  # CPU seconds of this process, the server, and every other process (noise)
    server_cpu: float
    other_cpu: float
    slowest: str  # the three slowest requests

    @property
    def rate(self) -> float:
        """Tiles per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        """Latency percentile q (0..1) in ms, nearest rank."""
        lat = sorted(self.latencies)
        return 1000 * lat[min(len(lat) - 1, round(q * (len(lat) - 1)))] if lat else float("nan")


def dz_dims(width: int, height: int) -> list[tuple[int, int]]:
    """Deep Zoom level sizes, level 0 (1x1) first, full resolution last."""
    dims = [(width, height)]
    while dims[-1] != (1, 1):
        dims.append((math.ceil(dims[-1][0] / 2), math.ceil(dims[-1][1] / 2)))
    return dims[::-1]


def level_tiles(width: int, height: int, tile_size: int, levels: list[int] | None = None) -> list[Tile]:
    """Every (level, col, row) of the given Deep Zoom levels (default: all), level by level."""
    dims = dz_dims(width, height)
    return [
        (z, c, r)
        for z in (range(len(dims)) if levels is None else levels)
        for r in range(math.ceil(dims[z][1] / tile_size))
        for c in range(math.ceil(dims[z][0] / tile_size))
    ]


def reference(path: Path, tiles: list[Tile], meta: dict[str, int], threads: int) -> float:
    """openslide DeepZoomGenerator + Pillow JPEG q75 of every tile from a cold OpenSlide; tiles/s."""
    osr = openslide.OpenSlide(sorted(path.glob("*.dcm"))[0] if path.is_dir() else path)  # DICOM: 1st file
    try:
        dz = DeepZoomGenerator(osr, meta["tile_size"], meta["overlap"], limit_bounds=False)
        ours = len(dz_dims(meta["width"], meta["height"])), (meta["width"], meta["height"])
        if (dz.level_count, osr.dimensions) != ours:
            raise ValueError(f"openslide: {dz.level_count} levels, {osr.dimensions}; ours: {ours}")

        def one(tile: Tile) -> int:
            buf = io.BytesIO()
            dz.get_tile(tile[0], (tile[1], tile[2])).save(buf, "JPEG", quality=75)
            return buf.tell()

        start = time.perf_counter()
        pool = ThreadPoolExecutor(threads)
        try:
            sizes = list(pool.map(one, tiles))
        finally:  # on Ctrl-C, drop the queued tiles instead of rendering them all
            pool.shutdown(cancel_futures=True)
        elapsed = time.perf_counter() - start
        if not all(sizes):
            raise ValueError("openslide + Pillow produced an empty JPEG")
        return len(tiles) / elapsed
    finally:
        osr.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def proc_mb(pid: int, key: str) -> int:
    """A field (VmHWM, VmRSS) of /proc/<pid>/status, in MB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next((int(ln.split()[1]) >> 10 for ln in lines if ln.startswith(key + ":")), 0)


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a keep-alive connection; returns (status, body)."""
    writer.write(req)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("server closed the connection")
    status, length = int(status_line.split(b" ", 2)[1]), None
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:  # Starlette always sends Content-Length
        raise ConnectionResetError(f"no Content-Length in a {status} answer")
    return status, await reader.readexactly(length)


async def fetch_all(
    port: int, paths: list[str], clients: int, pid: int, progress: bool = False, *, token: str = ""
) -> Pass:
    """GET every path with `clients` persistent connections pulling from one shared queue."""
    queue, latencies, sizes = iter(enumerate(paths)), [0.0] * len(paths), [0] * len(paths)
    failures: list[str] = []

    async def client(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        try:
            for i, path in queue:
                req = (
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
                ).encode()
                t0 = time.perf_counter()
                try:
                    status, body = await _get(*conn, req)
                except (ConnectionError, asyncio.IncompleteReadError):  # reconnect and retry once
                    conn[1].close()
                    conn = await asyncio.open_connection("127.0.0.1", port)
                    status, body = await _get(*conn, req)
                latencies[i], sizes[i] = time.perf_counter() - t0, len(body)
                if status != 200 or not body.startswith(b"\xff\xd8"):  # JPEG start-of-image
                    failures.append(f"{status} {len(body)} B {path} {body[:120]!r}")
                if progress and i and i % 2500 == 0:
                    print(
                        f"  ... {i} tiles, {sum(sizes) >> 20} MB served, "
                        f"server VmRSS {proc_mb(pid, 'VmRSS')} MB"
                    )
        finally:
            conn[1].close()

    # Connections are opened before the clock starts: a viewer keeps its own open.
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    cpu0, srv0, all0, t0 = time.process_time(), cpu_seconds(pid), busy_seconds(), time.perf_counter()
    await asyncio.gather(*(client(conn) for conn in conns))
    seconds = time.perf_counter() - t0
    client_cpu, server_cpu = time.process_time() - cpu0, cpu_seconds(pid) - srv0
    other = max(0.0, busy_seconds() - all0 - client_cpu - server_cpu)
    slow = sorted(range(len(paths)), key=latencies.__getitem__)[-3:][::-1]
    slowest = ", ".join(f"{paths[i].rsplit('_files/', 1)[1]} {1000 * latencies[i]:.0f} ms" for i in slow)
    return Pass(latencies, seconds, sum(sizes), failures, client_cpu, server_cpu, other, slowest)


def report(name: str, p: Pass) -> None:
    """Print one pass: rate, latency, failures, who used the CPU."""
    print(
        f"{name}: {len(p.latencies)} tiles ({p.bytes / 2**20:.1f} MB), {p.rate:.1f} tiles/s, "
        f"p50 {p.pct(0.5):.1f} ms, p99 {p.pct(0.99):.1f} ms, {len(p.failures)} failures; CPU s: server "
        f"{p.server_cpu:.2f}, client {p.client_cpu:.2f}, other processes {p.other_cpu:.2f}, over "
        f"{p.seconds:.2f} s wall; slowest: {p.slowest}"
    )
    for failure in p.failures[:10]:
        print(f"  FAIL {failure}")
    if p.other_cpu > 0.2 * p.seconds:
        print(f"  WARNING: other processes used {100 * p.other_cpu / p.seconds:.0f}% of a core: noisy")


def run_async(coro):  # type: ignore[no-untyped-def]
    """asyncio.run, on uvloop when available (a lighter client)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def collab(*args: str | Path) -> str:
    """Run one `collab` admin command; returns stdout, and echoes stderr if it failed."""
    done = subprocess.run([*COLLAB, *map(str, args)], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        print(done.stderr, file=sys.stderr, end="")
    return done.stdout


def register(data_dir: Path, paths: list[Path]) -> dict[Path, str]:
    """Create an org, a case and the slides in a data dir; returns {path: slide id}."""
    collab("orgs", "add", "bench", "--data-dir", data_dir)
    collab("cases", "add", "BENCH-1", "--org", "bench", "--data-dir", data_dir)
    done = subprocess.run(
        [
            *COLLAB,
            "users",
            "add",
            "bench",
            "--role",
            "pathologist",
            "--org",
            "bench",
            "--password-stdin",
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO,
        input="bench-password-not-secret\n",
        capture_output=True,
        text=True,
        check=True,
    )
    del done
    (data_dir / "bench-token").write_text(collab("users", "token", "bench", "--data-dir", data_dir).strip())
    out = collab("slides", "add", *paths, "--case", "BENCH-1", "--data-dir", data_dir)
    ids = {Path(p): i for i, p in (line.split("\t", 1) for line in out.splitlines() if "\t" in line)}
    return {p: ids[p.resolve()] for p in paths if p.resolve() in ids}


class Server:
    """A `collab serve` subprocess on a free port; a context manager that kills it on exit."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        cmd = [*COLLAB, "serve", "--data-dir", str(data_dir), "--port", str(self.port), "--host", "127.0.0.1"]
        cmd += extra
        token_file = data_dir / "bench-token"
        self.token = token_file.read_text() if token_file.exists() else ""

        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Server:
        """Poll /healthz for up to 30 s; if it never answers, kill the server and raise with its output."""
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                        if r.status == 200:
                            return self
                except OSError:
                    time.sleep(0.05)
            self.log.seek(0)
            log = self.log.read().decode(errors="replace")[-4000:]
            raise RuntimeError(f"server did not start (exit {self.proc.poll()}); its output:\n{log}")
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        """Stop the server: SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def json(self, path: str) -> dict:  # type: ignore[type-arg]
        """GET a JSON document."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)


def bench_slide(path: Path, slide_id: str, data_dir: Path, args: argparse.Namespace) -> list[str]:
    """Reference, then cold and warm passes on a fresh server, `--repeat` times; returns a table row.

    Each figure in the row is the median over the repetitions: on a shared 2-core
    machine single runs of either side move by up to 2x.
    """
    for file in path.glob("*") if path.is_dir() else [path]:
        file.read_bytes()  # warm the OS page cache so that neither side pays for the disk
    refs: dict[int, list[float]] = {t: [] for t in args.threads_ref}
    colds: list[Pass] = []
    warms: list[Pass] = []
    hwms: list[int] = []
    for repetition in range(args.repeat):
        with Server(data_dir) as server:
            meta = server.json(f"/api/slides/{slide_id}")  # opens the slide, so that is not timed below
            width, height, ts = meta["width"], meta["height"], meta["tile_size"]
            n_levels = len(dz_dims(width, height))
            tiles = level_tiles(width, height, ts, [n_levels - 2, n_levels - 1] if n_levels > 1 else [0])
            if repetition == 0:
                print(
                    f"\n## {path.name}: {width}x{height}, tile {ts} overlap {meta['overlap']}, "
                    f"{n_levels} DZ levels, {len(tiles)} tiles"
                )
            print(f"run {repetition + 1} of {args.repeat}")
            for threads in args.threads_ref:
                busy0, own0, t0 = busy_seconds(), time.process_time(), time.perf_counter()
                try:
                    rate = reference(path, tiles, meta, threads)
                except Exception as exc:  # noqa: BLE001 - report it and go on
                    rate = float("nan")
                    print(f"reference {threads} thread(s) FAILED: {type(exc).__name__}: {exc}")
                refs[threads].append(rate)
                other = max(0.0, busy_seconds() - busy0 - (time.process_time() - own0))
                print(
                    f"reference openslide {threads} thread(s): {rate:.1f} tiles/s (other processes: "
                    f"{other:.2f} CPU s over {time.perf_counter() - t0:.2f} s)"
                )
            urls = [f"/slides/{slide_id}_files/{z}/{c}_{r}.jpeg" for z, c, r in tiles]
            colds.append(
                run_async(fetch_all(server.port, urls, args.clients, server.proc.pid, token=server.token))
            )
            report("ours cold", colds[-1])
            warms.append(
                run_async(fetch_all(server.port, urls, args.clients, server.proc.pid, token=server.token))
            )
            report("ours warm", warms[-1])
            hwms.append(proc_mb(server.proc.pid, "VmHWM"))
            print(f"server peak RSS (VmHWM): {hwms[-1]} MB")
    median = statistics.median
    ref_rates = {t: median(rates) for t, rates in refs.items()}
    ref = ref_rates.get(2, ref_rates[args.threads_ref[-1]])
    cold_rate, warm_rate = median(p.rate for p in colds), median(p.rate for p in warms)
    return [
        *(path.name, f"{width}x{height}", str(len(tiles)), *(f"{r:.0f}" for r in ref_rates.values())),
        *(
            f"{cold_rate:.0f}",
            f"{median(p.pct(0.5) for p in colds):.1f} / {median(p.pct(0.99) for p in colds):.1f}",
        ),
        *(
            f"{warm_rate:.0f}",
            f"{median(p.pct(0.5) for p in warms):.1f} / {median(p.pct(0.99) for p in warms):.1f}",
        ),
        *(f"{cold_rate / ref:.2f}x", f"{warm_rate / ref:.2f}x"),
        *(str(sum(len(p.failures) for p in colds + warms)), str(max(hwms))),
    ]


def make_demo(tmp: Path, width: int, height: int) -> Path:
    """Generate a demo slide with collab.slides.demo (ImportError if that is not there yet)."""
    from collab.slides.demo import generate_demo_slide

    path, t0 = tmp / f"demo-{width}x{height}.tiff", time.perf_counter()
    generate_demo_slide(path, l0_width=width, l0_height=height)
    print(f"generated {path.name} ({path.stat().st_size >> 20} MB) in {time.perf_counter() - t0:.1f} s")
    return path


def walk_demo(tmp: Path, args: argparse.Namespace) -> None:
    """One client fetches every tile of every level of a 40,000 x 30,000 demo slide."""
    print("\n## walk-demo")
    path = make_demo(tmp, 40_000, 30_000)
    slide_id = register(tmp / "walk-data", [path])[path]
    # Caches far smaller than the slide, so that they fill up and must evict.
    caches = [
        "--tile-cache-mb",
        str(args.walk_tile_cache_mb),
        "--pixel-cache-mb",
        str(args.walk_pixel_cache_mb),
    ]
    with Server(tmp / "walk-data", *caches) as server:
        meta = server.json(f"/api/slides/{slide_id}")
        # Full resolution first, as a pathologist scanning the slide would.
        tiles = sorted(level_tiles(meta["width"], meta["height"], meta["tile_size"]), key=lambda t: -t[0])
        urls = [f"/slides/{slide_id}_files/{z}/{c}_{r}.jpeg" for z, c, r in tiles]
        p = run_async(fetch_all(server.port, urls, 1, server.proc.pid, progress=True, token=server.token))
        hwm = proc_mb(server.proc.pid, "VmHWM")
    report(f"walk-demo, 1 client, all {len(dz_dims(meta['width'], meta['height']))} levels", p)
    print(
        f"walk-demo: {len(tiles)} tiles ({p.bytes >> 20} MB of JPEG) with {' '.join(caches)}: "
        f"{p.rate:.1f} tiles/s, server peak RSS (VmHWM) {hwm} MB"
    )


def machine() -> str:
    """nproc, CPU model, Python and openslide versions, load."""
    model = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    cpu = model[1] if model else platform.processor() or "?"
    osv = f"openslide-python {openslide.__version__}, openslide {openslide.__library_version__}"
    return (
        f"nproc {len(os.sched_getaffinity(0))}, CPU {cpu}, Python {platform.python_version()}, {osv}, "
        f"{platform.system()} {platform.release()}, loadavg {Path('/proc/loadavg').read_text().split()[0]}"
    )


def main() -> int:
    """Parse the arguments, run every benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add = parser.add_argument
    add("--slides", nargs="+", type=Path, help="files or DICOM folders (default: ../shared/slides/*)")
    add("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    add("--repeat", type=int, default=3, help="runs per slide, each on a fresh server; medians (default 3)")
    add("--threads-ref", default="1,2", help="reference thread counts (default 1,2)")
    add("--demo", action="store_true", help="also benchmark a generated demo slide")
    add("--demo-size", default="20000x15000", help="WxH of the --demo slide (default 20000x15000)")
    add("--walk-demo", action="store_true", help="one client walks every tile of a 40k x 30k demo slide")
    add("--walk-tile-cache-mb", type=int, default=16, help="server tile cache for --walk-demo (default 16)")
    add("--walk-pixel-cache-mb", type=int, default=32, help="server pixel cache for --walk-demo (default 32)")

    args = parser.parse_args()
    args.threads_ref = [int(t) for t in args.threads_ref.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the server
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows when piped
    print(f"$ {shlex.join([os.path.relpath(sys.executable), *sys.argv])}\n{machine()}")
    slides = args.slides or sorted(p for p in SHARED.iterdir() if p.is_dir() or p.suffix != ".txt")
    with tempfile.TemporaryDirectory(prefix="collab-bench-") as tmp_name:
        tmp, rows = Path(tmp_name), []
        if args.demo:
            try:
                slides.append(make_demo(tmp, *(int(v) for v in args.demo_size.lower().split("x"))))
            except Exception as exc:  # noqa: BLE001 - the generator may be unfinished
                print(f"skipping --demo: {type(exc).__name__}: {exc}")
        ids = register(tmp / "data", slides) if slides else {}
        for path in slides:
            if path not in ids:
                print(f"\n## {path.name}: refused by `collab slides add`, skipped")
                continue
            try:
                rows.append(bench_slide(path, ids[path], tmp / "data", args))
            except Exception as exc:  # noqa: BLE001 - one broken slide must not stop the rest
                print(f"{path.name} FAILED: {type(exc).__name__}: {exc}")
        if rows:
            refs = [f"ref {t}t tiles/s" for t in args.threads_ref]
            cols = "cold tiles/s|cold p50/p99 ms|warm tiles/s|warm p50/p99 ms|"
            cols += "cold/ref|warm/ref|fails|peak RSS MB"
            head = ["slide", "size", "tiles", *refs, *cols.split("|")]
            print(
                f"\n{args.clients} clients; medians of {args.repeat} runs; ratios are ours / reference "
                f"{2 if 2 in args.threads_ref else args.threads_ref[-1]} threads\n"
            )
            for row in [head, ["---"] * len(head), *rows]:
                print("| " + " | ".join(row) + " |")
        if args.walk_demo:
            try:
                walk_demo(tmp, args)
            except Exception as exc:  # noqa: BLE001
                print(f"--walk-demo FAILED: {type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
