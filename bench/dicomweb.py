"""Benchmark: Deep Zoom tiles of DICOM slides read from a PACS over DICOMweb (a real Orthanc with
its DICOMweb plugin) against the same DICOM files read from disk, in one run.

Each shared DICOM slide is registered twice in one data directory: from its files, and by
reference to the same series stored in Orthanc. For each source, a fresh ``collab serve``
process (empty caches) is asked for every tile of every Deep Zoom level by N keep-alive clients
(cold), then for the same tiles forty times more (warm, from the tile cache). Each pass is repeated and
the median run is reported: tiles/s and per-tile latency p50/p99, and DICOMweb/disk ratios.
A sample of tiles from both sources is compared, so the bench measures the same pictures.

    .venv/bin/python bench/dicomweb.py [--clients 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import (  # noqa: E402
    add_slides,
    api_token,
    collab,
    seed_case,
    start_server,
    stop_server,
)
from tests.orthanc import available, new_orthanc  # noqa: E402

SHARED = REPO.parent / "shared" / "slides"
SLIDES = ["dicom-cmu-1-small-region", "dicom-boxes"]
WARM_ROUNDS = 40


@dataclass
class Run:
    tiles: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.tiles / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tile_urls(client: httpx.Client, slide: str) -> list[str]:
    """Every tile of every Deep Zoom level of the slide, in the geometry the server reports."""
    dzi = client.get(f"/slides/{slide}.dzi").text
    size = int(dzi.split('TileSize="')[1].split('"')[0])
    info = client.get(f"/api/slides/{slide}").json()
    width, height = info["width"], info["height"]
    level = (max(width, height) - 1).bit_length()
    urls = []
    while level >= 0:
        for row in range(-(-height // size)):
            for col in range(-(-width // size)):
                urls.append(f"/slides/{slide}_files/{level}/{col}_{row}.jpeg")
        width, height, level = -(-width // 2), -(-height // 2), level - 1
    return urls


def fetch_all(base: str, token: str, urls: list[str], clients: int) -> Run:
    """All the tiles, shared among ``clients`` keep-alive connections; wall time and latencies."""
    headers = {"Authorization": f"Bearer {token}"}
    shares = [urls[i::clients] for i in range(clients)]

    def worker(share: list[str]) -> list[float]:
        times = []
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for url in share:
                started = time.perf_counter()
                answer = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for times in pool.map(worker, shares) for t in times]
    return Run(len(urls), time.perf_counter() - started, latencies)


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def same_pictures(client: httpx.Client, disk: str, pacs: str, urls: list[str]) -> float:
    """Mean absolute difference over a sample of PNG tiles from both sources."""
    diffs = []
    for url in urls[:: max(1, len(urls) // 12)]:
        png = url.replace(".jpeg", ".png")
        a = np.asarray(Image.open(io.BytesIO(client.get(png).content)).convert("RGB"), dtype=float)
        b = np.asarray(
            Image.open(io.BytesIO(client.get(png.replace(disk, pacs)).content)).convert("RGB"), dtype=float
        )
        diffs.append(float(np.abs(a - b).mean()) if a.shape == b.shape else 255.0)
    return max(diffs)


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folders = [SHARED / name for name in SLIDES]
    if not all(f.is_dir() for f in folders) or not available():
        print(
            "bench/dicomweb.py needs ../shared/slides and Orthanc with its DICOMweb plugin", file=sys.stderr
        )
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-dicomweb-"))
    orthanc = new_orthanc(work / "orthanc")
    rows = []
    try:
        data_dir = work / "data"
        data_dir.mkdir()
        seed_case(data_dir)
        pairs = []
        for folder in folders:
            orthanc.upload(folder)
            (disk,) = add_slides(data_dir, folder)
            first = pydicom.dcmread(
                next(p for p in sorted(folder.iterdir()) if p.is_file()), stop_before_pixels=True
            )
            made = collab(
                "slides", "add-dicomweb", orthanc.dicomweb, "--study", str(first.StudyInstanceUID),
                "--series", str(first.SeriesInstanceUID), "--case", "S26-1", data_dir=data_dir,
            )  # fmt: skip
            assert made.returncode == 0, made.stderr
            pairs.append((folder.name, disk, made.stdout.split("\t")[0]))
        token = api_token(data_dir, "north.path")
        version = httpx.get(f"{orthanc.url}/system").json().get("Version", "?")
        for name, disk, pacs in pairs:
            figures: dict[str, dict[str, Run]] = {}
            for source, slide in (("disk", disk), ("DICOMweb", pacs)):
                cold, warm = [], []
                for _ in range(args.repeats):
                    server = start_server(data_dir)  # a fresh process: empty caches
                    try:
                        server.client.headers["Authorization"] = f"Bearer {token}"
                        urls = tile_urls(server.client, slide)
                        cold.append(fetch_all(server.url, token, urls, args.clients))
                        # Every tile is in the tile cache now; forty rounds make the pass long enough to time.
                        warm.append(fetch_all(server.url, token, urls * WARM_ROUNDS, args.clients))
                        if source == "DICOMweb":
                            disk_urls = tile_urls(server.client, disk)
                            worst = same_pictures(server.client, disk, pacs, disk_urls)
                    finally:
                        stop_server(server)
                figures[source] = {"cold": median_run(cold), "warm": median_run(warm)}
            rows.append((name, figures, worst))
    finally:
        orthanc.stop()

    print(f"\n`{' '.join([Path(sys.executable).name, *sys.argv])}`")
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" Orthanc {version};"
        f" {args.clients} clients, median of {args.repeats} runs, every tile of every Deep Zoom level\n"
    )
    head = "| slide | pass | tiles | disk tiles/s | DICOMweb tiles/s | ratio"
    print(head + " | disk p50 / p99 ms | DICOMweb p50 / p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, figures, _ in rows:
        for phase in ("cold", "warm"):
            d, w = figures["disk"][phase], figures["DICOMweb"][phase]
            print(
                f"| {name} | {phase} | {d.tiles} | {d.rate:.0f} | {w.rate:.0f} | {w.rate / d.rate:.2f}x"
                f" | {d.percentile(0.5):.1f} / {d.percentile(0.99):.1f}"
                f" | {w.percentile(0.5):.1f} / {w.percentile(0.99):.1f} |"
            )
    print()
    for name, _, worst in rows:
        print(f"{name}: DICOMweb tiles vs disk, worst mean abs difference over a PNG sample: {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
