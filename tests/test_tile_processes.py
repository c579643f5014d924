"""Tiles drawn in worker processes (``collab serve --tile-processes 2``): the same bytes as the
server's own threads draw, for every tile of every level in both formats; a worker killed with
SIGKILL costs at most the tile it was asked for, and the server goes on serving."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    Server,
    add_slides,
    seed_case,
    signed_in,
    start_server,
    stop_server,
    write_fake_svs,
    write_pyramid_tiff,
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, list[str]]]:
    """One data dir served twice: by threads, and by two tile worker processes."""
    data_dir = tmp_path_factory.mktemp("data")
    slides = tmp_path_factory.mktemp("slides")
    seed_case(data_dir)
    slide_ids = add_slides(
        data_dir,
        write_pyramid_tiff(slides / "slide.tiff", 1500, 1100, tile=256),
        write_fake_svs(slides / "fake.svs"),
    )
    threads = signed_in(start_server(data_dir), "north.path")
    workers = signed_in(start_server(data_dir, args=["--tile-processes", "2"]), "north.path")
    yield threads, workers, slide_ids
    stop_server(workers)
    stop_server(threads)


def _tiles(server: Server, slide_id: str) -> list[str]:
    """Every tile address of the slide, both formats."""
    info = server.client.get(f"/api/slides/{slide_id}").json()
    width, height = info["width"], info["height"]
    dzi = server.client.get(f"/slides/{slide_id}.dzi").text
    size = int(dzi.split('TileSize="')[1].split('"')[0])
    urls = []
    level = (max(width, height) - 1).bit_length()
    while level >= 0:
        for col in range(-(-width // size)):
            for row in range(-(-height // size)):
                urls += [f"/slides/{slide_id}_files/{level}/{col}_{row}.{fmt}" for fmt in ("jpeg", "png")]
        width, height, level = -(-width // 2), -(-height // 2), level - 1
    return urls


def _workers_of(server: Server) -> list[int]:
    """The server's tile worker processes (multiprocessing's spawned children)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_workers_draw_the_same_tiles_as_threads(servers: tuple[Server, Server, list[str]]) -> None:
    threads, workers, slide_ids = servers
    compared = 0
    for slide_id in slide_ids:
        for url in _tiles(threads, slide_id):
            a, b = threads.client.get(url), workers.client.get(url)
            assert (a.status_code, b.status_code) == (200, 200), (url, b.text[:200])
            assert a.content == b.content and a.headers["etag"] == b.headers["etag"], url
            compared += 1
    assert compared > 40
    assert len(_workers_of(workers)) == 2


def test_a_killed_worker_costs_at_most_its_tile_and_the_pool_starts_again(
    servers: tuple[Server, Server, list[str]],
) -> None:
    threads, workers, slide_ids = servers
    # Tiles neither server has drawn yet: a slide of its own, so that each is drawn now.
    [slide_id] = add_slides(
        workers.data_dir, write_pyramid_tiff(workers.data_dir.parent / "after.tiff", 1200, 900, seed=3)
    )
    killed = _workers_of(workers)
    for victim in killed:
        os.kill(victim, signal.SIGKILL)
    answers = [(url, workers.client.get(url)) for url in _tiles(workers, slide_id)]
    failed = [(url, a.status_code, a.text) for url, a in answers if a.status_code != 200]
    # The pool is found broken by the first tile sent to it, which says so; the rest are drawn.
    assert len(failed) <= 1, failed
    assert all(status == 503 and "stopped" in text for _, status, text in failed), failed
    for url, answer in answers:
        if answer.status_code == 200:
            assert answer.content == threads.client.get(url).content, url
    started_again = _workers_of(workers)
    assert started_again and not set(started_again) & set(killed)
    assert workers.client.get("/healthz").status_code == 200
    print(f"\n{len(killed)} workers killed; {len(answers)} tiles asked for after, {len(failed)} refused")
