"""Readiness and Prometheus metrics, against one real server: real websockets, real tiles, real HTTP."""

from __future__ import annotations

import asyncio
import math
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Server,
    add_slides,
    add_user,
    api_token,
    room_people,
    seed_case,
    sqlite_only,
    start_server,
    stop_server,
    write_pyramid_tiff,
)
from tests.yclient import YClient, point_annotation

METRICS_TOKEN = secrets.token_urlsafe(32)


@dataclass
class Site:
    server: Server
    case_id: str
    slide_id: str
    tokens: dict[str, str]
    ids: dict[str, int]

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.server.url + path, headers=headers, timeout=30)

    def identifiers(self) -> list[str]:
        """What must never appear in the metrics: the case, its slide, its people, its trust."""
        return [self.case_id, self.slide_id, "S26-1", "North Trust", "Dr North", METRICS_TOKEN, *self.tokens]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server for the module: case S26-1 with a generated slide, its people, an admin, and
    ``COLLAB_METRICS_TOKEN`` set."""
    data_dir = tmp_path_factory.mktemp("metrics") / "data"
    data_dir.mkdir()
    seed_case(data_dir)
    slide = write_pyramid_tiff(data_dir.parent / "slide.tiff", 1024, 1024, levels=2)
    (slide_id,) = add_slides(data_dir, slide)
    add_user(data_dir, "north.admin", "admin", "North Trust")
    case_id, tokens, ids = room_people(data_dir, clinician=False)
    tokens["north.admin"] = api_token(data_dir, "north.admin")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COLLAB_METRICS_TOKEN", METRICS_TOKEN)
        server = start_server(data_dir)
    yield Site(server, case_id, slide_id, tokens, ids)
    stop_server(server)


# -- a strict reader of the text format ----------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"({NAME})(?:\{{(.*)\}})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of Prometheus text format 0.0.4, refusing anything loose: each metric has
    HELP then TYPE before its samples, which follow together; counters end in _total; each
    histogram's buckets rise to +Inf, which equals its _count."""
    assert text.endswith("\n")
    samples: Samples = {}
    helped: set[str] = set()
    types: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and help_text and name not in helped, line
            helped.add(name)
            current = None
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in helped and name not in types and kind in TYPES, line
            assert kind != "counter" or name.endswith("_total"), f"counter {name} does not end in _total"
            types[name] = kind
            current = name
        else:
            match = SAMPLE.fullmatch(line)
            assert match and current is not None, f"not a sample of the metric above: {line!r}"
            name, label_text, value_text = match[1], match[2] or "", match[3]
            suffixes = ("_bucket", "_sum", "_count") if types[current] == "histogram" else ("",)
            assert name in {current + suffix for suffix in suffixes}, f"{name} under TYPE {current}"
            labels = [m.groups() for m in LABEL.finditer(label_text)]
            assert "".join(f'{k}="{v}"{sep}' for k, v, sep in labels) == label_text, line
            key = (name, frozenset((k, v) for k, v, _ in labels))
            assert key not in samples, f"repeated sample {line!r}"
            samples[key] = float(value_text)  # float() takes +Inf and NaN as the format writes them
    for name, kind in types.items():
        if kind == "histogram":
            _check_histogram(samples, name)
    assert helped == set(types), "HELP without TYPE"
    return samples


def _check_histogram(samples: Samples, name: str) -> None:
    series: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    for (sample, labels), value in samples.items():
        if sample == name + "_bucket":
            le = dict(labels)["le"]
            series.setdefault(labels - {("le", le)}, []).append((float(le), value))
    assert series, f"histogram {name} has no buckets"
    for labels, buckets in series.items():
        counts = [count for _, count in sorted(buckets)]
        assert counts == sorted(counts) and sorted(buckets)[-1][0] == math.inf
        assert counts[-1] == samples[(name + "_count", labels)]
        assert (name + "_sum", labels) in samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(site: Site, token: str = METRICS_TOKEN) -> Samples:
    response = site.get("/metrics", token)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    for secret in site.identifiers():
        assert secret not in response.text
    return parse(response.text)


def poll(site: Site, holds: Callable[[Samples], bool], timeout_s: float = 20.0) -> Samples:
    """Scrape until ``holds`` (a bound against a hang, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while not holds(samples := scrape(site)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return samples


# -- readiness ------------------------------------------------------------------------------


def test_readyz_answers_when_the_database_does(site: Site) -> None:
    response = site.get("/readyz")  # no credentials: load balancers call it
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert site.get("/healthz").json() == {"status": "ok"}


@sqlite_only("the SQLite file moved away; tests/test_postgres.py stops PostgreSQL under a server")
def test_readyz_fails_naming_the_database_when_its_file_is_gone(site: Site) -> None:
    database = site.server.data_dir / "collab.sqlite3"
    moved = database.with_name("collab.sqlite3.moved")
    # Moved away and a directory in its place (chmod 000 stops no root): the server's open
    # connection still reads the old file, so only a check that really opens the path can tell.
    os.rename(database, moved)
    database.mkdir()
    try:
        response = site.get("/readyz")
    finally:
        database.rmdir()
        os.rename(moved, database)
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "checks": {"database": "error"}}
    assert str(site.server.data_dir) not in response.text
    assert site.get("/readyz").status_code == 200


# -- who may read the metrics ---------------------------------------------------------------


def test_metrics_are_refused_without_credentials_and_to_non_admins(site: Site) -> None:
    anonymous = site.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert site.get("/metrics", "not-the-token").status_code == 401
    assert site.get("/metrics", METRICS_TOKEN[:-1]).status_code == 401
    pathologist = site.get("/metrics", site.tokens["north.path"])
    assert pathologist.status_code == 403
    assert "collab_" not in anonymous.text + pathologist.text


def test_metrics_are_prometheus_text_for_the_token_and_for_an_admin(site: Site) -> None:
    for token in (METRICS_TOKEN, site.tokens["north.admin"]):
        samples = scrape(site, token)
        assert value(samples, "collab_uptime_seconds") > 0
        assert value(samples, "collab_rooms_open", room="teaching") == 0
        assert value(samples, "collab_cache_limit_bytes", cache="tiles") == 128 << 20


def test_a_short_metrics_token_is_refused_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "COLLAB_METRICS_TOKEN": "password123"}
    command = [sys.executable, "-m", "collab", "serve", "--data-dir", str(tmp_path), "--port", "1"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "COLLAB_METRICS_TOKEN must be at least 32 characters" in result.stderr
    assert "password123" not in result.stderr


# -- the numbers move -----------------------------------------------------------------------


def test_rooms_peers_and_updates(site: Site) -> None:
    before = scrape(site)
    received = value(before, "collab_document_updates_received_total", room="case")
    written = value(before, "collab_document_updates_written_total", room="case")
    url = site.server.url.replace("http://", "ws://") + f"/ws/cases/{site.case_id}"

    async def scenario() -> tuple[Samples, Samples]:
        a = await YClient(url, site.tokens["north.path"]).connect()
        b = await YClient(url, site.tokens["north.trainee"]).connect()
        try:
            await asyncio.wait_for(asyncio.gather(a.synced.wait(), b.synced.wait()), 30)
            a.annotations()["m1"] = point_annotation(site.ids["north.path"], "for the metrics")
            await b.wait_for(lambda: "m1" in b.annotations(), timeout=30)
            during = await asyncio.to_thread(
                poll,
                site,
                lambda s: value(s, "collab_document_updates_written_total", room="case") > written,
            )
        finally:
            await a.close()
            await b.close()
        after = await asyncio.to_thread(poll, site, lambda s: value(s, "collab_rooms_open", room="case") == 0)
        return during, after

    during, after = asyncio.run(scenario())
    assert value(during, "collab_peers_connected", room="case") == 2
    assert value(during, "collab_rooms_open", room="case") >= 1
    assert value(during, "collab_document_updates_received_total", room="case") >= received + 1
    assert value(during, "collab_document_updates_written_total", room="case") >= written + 1
    assert value(during, "collab_write_batch_seconds_count", room="case") >= 1
    assert value(after, "collab_peers_connected", room="case") == 0
    assert value(after, "collab_write_queue_rows", room="case") == 0
    assert value(after, "collab_write_failures_total", room="case") == 0


def test_one_render_then_a_cache_hit_then_not_modified(site: Site) -> None:
    token = site.tokens["north.path"]
    info = site.get(f"/api/slides/{site.slide_id}", token).json()
    # The top level's inner tile: opening a slide caches only its one-tile overview levels.
    z_level = math.ceil(math.log2(max(info["width"], info["height"])))
    path = f"/slides/{site.slide_id}_files/{z_level}/1_1.jpeg"
    before = scrape(site)

    first, second = site.get(path, token), site.get(path, token)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    revalidated = site.get(path, token, **{"If-None-Match": first.headers["etag"]})
    assert revalidated.status_code == 304

    after = scrape(site)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("collab_images_served_total", image="tile", outcome="rendered") == 1
    assert moved("collab_images_served_total", image="tile", outcome="hit") == 1
    assert moved("collab_images_served_total", image="tile", outcome="not_modified") == 1
    assert moved("collab_images_served_total", image="tile", outcome="error") == 0
    assert moved("collab_image_render_seconds_count", image="tile") == 1
    assert moved("collab_cache_hits_total", cache="tiles") == 1
    assert moved("collab_cache_misses_total", cache="tiles") == 1
    assert value(after, "collab_cache_bytes", cache="tiles") >= len(first.content)
    assert value(after, "collab_slides_open") == 1
