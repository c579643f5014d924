"""Follow latency and time to first tile, in real headless Chromium against a real `collab serve`.

    .venv/bin/python bench/follow.py [--moves 60] [--loads 10] [--cold 3] [--size 40000x30000]
                                     [--drawers webgl,canvas]

One generated slide (``collab.slides.demo``, default 40000 x 30000) in case S26-1 of a fresh data
dir; people sign in through the login form; every page is 1280 x 800 on the system Chromium.
Everything runs once per OpenSeadragon drawer: ``webgl`` is what the page picks (here WebGL is
SwiftShader, i.e. rendered on the CPU, as on any machine without a GPU); ``canvas`` is Chromium
with ``--disable-webgl``, where the page falls back to OpenSeadragon's 2D canvas drawer.

Follow: north.trainee follows north.path (``presence.follow``). The presenter pans `--moves` times
(``viewport.panTo(point, true)``: 0.05 to 1.5 fields, alternating directions), each once the
follower has caught up and `--spacing` later. Latency runs from the presenter's call to the
follower's first frame drawn at the new view (``update-viewport``, centre within 1% of the field
width); on the way, when the presenter sent it (awareness ``update``) and when the follower's
viewport was set (its awareness ``change``). Reference: the raw awareness round trip without the
viewer, ``awareness.setLocalStateField('probe', n)`` in the presenter to the follower's
``awareness.on('change')`` seeing it: once before each move (same conditions: tiles of the last
move still loading), and 20 times with both viewers idle. Both pages run in one browser, so times
are compared on one clock (``performance.timeOrigin + performance.now()``, each page's offset to
``Date.now()`` measured and removed).

First tile: a fresh browser context (signed in, empty cache) opens ``/cases/{id}``; the page's own
``performance.now()`` when ``#viewer`` gets ``data-first-tile="drawn"`` (a MutationObserver from an
init script) is the time since navigation start. Cold: the first open of the slide after a server
start (`--cold` restarts); warm: `--loads` more, after one uncounted. Reference: ``fetch`` of the
DZI descriptor and of the tile the viewer received first, from a page already open on the server,
cold (after a restart) and warm, measured once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402

from tests.conftest import (  # noqa: E402
    PASSWORD,
    Server,
    add_slides,
    add_user,
    seed_case,
    start_server,
    stop_server,
)

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
PRESENTER, FOLLOWER = "north.path", "north.trainee"
TIMEOUT_MS = 15_000
MOVE_TIMEOUT_MS = 10_000
IDLE_PROBES = 20
FOLLOW_TARGET_P95_MS = 150.0
FIRST_TILE_TARGET_MS = 1000.0
DRAWER_FLAGS = {"webgl": [], "canvas": ["--disable-webgl"]}

# Marks, in every document, the moment #viewer says its first tile is drawn (ms since navigation start).
FIRST_TILE_OBSERVER = """(() => {
  const seen = () => {
    const viewer = document.getElementById("viewer");
    if (!viewer || viewer.dataset.firstTile !== "drawn") return false;
    window.__firstTile = performance.now();
    return true;
  };
  new MutationObserver((_, observer) => { if (seen()) observer.disconnect(); })
    .observe(document, { subtree: true, attributes: true, attributeFilter: ["data-first-tile"] });
})();"""

FIRST_TILE_MARKS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const dzi = resources.find((r) => r.name.includes(".dzi"));
  const tiles = resources.filter((r) => r.name.includes("_files/"));
  tiles.sort((a, b) => a.responseEnd - b.responseEnd);
  return {
    drawn: window.__firstTile,
    drawer: window.collab ? window.collab.viewer.drawer.getType() : null,
    html: nav ? nav.responseEnd : null,
    dcl: nav ? nav.domContentLoadedEventEnd : null,
    dzi: dzi ? dzi.responseEnd : null,
    tile: tiles.length ? tiles[0].responseEnd : null,
    tileUrl: tiles.length ? tiles[0].name : null,
  };
}"""

REFERENCE_FETCH = """async ([dzi, tile]) => {
  const t0 = performance.now();
  const d = await fetch(dzi, { cache: "no-store" });
  await d.text();
  const t = await fetch(tile, { cache: "no-store" });
  await t.arrayBuffer();
  return { ms: performance.now() - t0, ok: d.ok && t.ok, status: [d.status, t.status] };
}"""

# High-resolution time minus Date.now(), averaged over ~20 ms so Date.now()'s 1 ms steps average out.
CLOCK_OFFSET = """() => {
  const end = performance.now() + 20;
  let sum = 0, n = 0;
  while (performance.now() < end) { sum += performance.timeOrigin + performance.now() - Date.now(); n++; }
  return sum / n;
}"""

# Both pages: window.__bench.target is the view to watch for (set by evaluate before each move).
# The presenter records when it sends that view; the follower when its viewport is set to it (awareness
# change, after presence's own handler) and when the frame at that view is drawn (update-viewport), and
# when the presenter's probe value arrives.
RECORDER = """(presenter) => {
  const c = window.collab;
  const now = () => performance.timeOrigin + performance.now();
  const b = (window.__bench = { target: null, sent: null, applied: null, drawn: null, probe: null, probeAt: null });
  const matches = (v) => {
    const t = b.target, tol = t.width / 100;
    return v && v.slide === t.slide && Math.abs(v.x - t.x) < tol && Math.abs(v.y - t.y) < tol
      && Math.abs(v.width - t.width) < tol;
  };
  c.awareness.on("update", (_, origin) => {
    if (origin !== "local" || !b.target || b.sent !== null) return;
    if (matches((c.awareness.getLocalState() || {}).view)) b.sent = now();
  });
  c.viewer.addHandler("update-viewport", () => {
    if (!b.target || b.drawn !== null || !matches(c.slideView.view())) return;
    b.drawn = now();
    if (b.applied === null) b.applied = b.drawn;
  });
  c.awareness.on("change", () => {
    const t = now();
    if (b.target && b.applied === null && matches(c.slideView.view())) b.applied = t;
    if (b.probe !== null && b.probeAt === null) {
      const state = c.awareness.getStates().get(presenter);
      if (state && state.probe === b.probe) b.probeAt = t;
    }
  });
}"""

WATCH = "(t) => Object.assign(window.__bench, { target: t, sent: null, applied: null, drawn: null })"

PRESENTER_PAN = """([x, y]) => {
  const viewer = window.collab.viewer;
  const point = viewer.world.getItemAt(0).imageToViewportCoordinates(x, y);
  const t0 = performance.timeOrigin + performance.now();
  viewer.viewport.panTo(point, true);
  return t0;
}"""

PRESENTER_PROBE = """(n) => {
  const t0 = performance.timeOrigin + performance.now();
  window.collab.awareness.setLocalStateField("probe", n);
  return t0;
}"""


class BenchError(Exception):
    """Something did not set up or did not happen in time; the message says what."""


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile q (0..1); NaN when empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


@dataclass
class Session:
    """A server with case S26-1 and one slide, the browser in use, and signed-in people's cookies."""

    data_dir: Path
    server: Server
    case_id: str
    slide_id: str
    browser: Browser | None = None
    states: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self) -> None:
        """Stop the server and start it again on the same port: its caches are empty again."""
        port = urlsplit(self.server.url).port
        stop_server(self.server)
        self.server = start_server(self.data_dir, port=port)

    def new_context(self, **options: Any) -> BrowserContext:
        assert self.browser is not None
        return self.browser.new_context(base_url=self.url, viewport=VIEWPORT, **options)

    def sign_in(self, username: str) -> None:
        """Sign in through the login form once; later contexts (in any browser) reuse the cookies."""
        context = self.new_context()
        try:
            page = context.new_page()
            page.goto("/login")
            page.locator("input[name=username]").fill(username)
            page.locator("input[name=password]").fill(PASSWORD)
            with page.expect_navigation():
                page.locator("form.login button[type=submit]").click()
            if urlsplit(page.url).path == "/login":
                alert = page.locator("[role=alert]")
                raise BenchError(
                    f"{username} could not sign in: {alert.inner_text() if alert.count() else '?'}"
                )
            self.states[username] = context.storage_state()
        finally:
            context.close()

    def context(self, username: str) -> BrowserContext:
        """A fresh context (empty cache) with ``username``'s cookies, recording page errors."""
        context = self.new_context(storage_state=self.states[username])
        context.add_init_script(FIRST_TILE_OBSERVER)
        context.on("weberror", lambda error: self.errors.append(f"{username}: {error.error}"))
        return context


def setup(tmp: Path, size: tuple[int, ...]) -> Session:
    """Slide, data dir (people, case, slide) and a running server."""
    from collab.slides.demo import generate_demo_slide

    data_dir = tmp / "data"
    data_dir.mkdir()
    slide = tmp / "demo.tiff"
    started = time.perf_counter()
    generate_demo_slide(slide, l0_width=size[0], l0_height=size[1])
    print(
        f"generated {slide.name} {size[0]} x {size[1]} in {time.perf_counter() - started:.1f} s", flush=True
    )
    try:
        seed_case(data_dir)
        add_user(data_dir, FOLLOWER, "trainee", "North Trust", "--name", "North Trainee")
        (slide_id,) = add_slides(data_dir, slide)
    except AssertionError as exc:
        raise BenchError(f"could not seed the data dir: {exc}") from exc
    with sqlite3.connect(data_dir / "collab.sqlite3") as db:
        (case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()
    return Session(data_dir, start_server(data_dir), str(case_id), slide_id)


def open_case(page: Page, session: Session, drawer: str) -> int:
    """Open the case, wait for a drawn tile and a live connection; the awareness client id."""
    page.goto(f"/cases/{session.case_id}")
    page.wait_for_selector("#viewer[data-first-tile=drawn]", state="attached", timeout=TIMEOUT_MS)
    page.wait_for_selector("#connection[data-state=connected]", state="attached", timeout=TIMEOUT_MS)
    used = page.evaluate("window.collab.viewer.drawer.getType()")
    if used != drawer:
        raise BenchError(f"the page uses OpenSeadragon's {used} drawer, not {drawer}")
    return int(page.evaluate("window.collab.awareness.clientID"))


def first_tile_load(session: Session, drawer: str) -> dict[str, Any]:
    """One fresh page load of the case: marks in ms since navigation start."""
    context = session.context(PRESENTER)
    try:
        page = context.new_page()
        page.goto(f"/cases/{session.case_id}", wait_until="commit")
        try:
            page.wait_for_function("window.__firstTile !== undefined", timeout=TIMEOUT_MS)
        except PlaywrightError as exc:
            raise BenchError(f"no tile drawn {TIMEOUT_MS} ms after opening the case") from exc
        marks = dict(page.evaluate(FIRST_TILE_MARKS))
    finally:
        context.close()
    if marks["drawer"] != drawer:
        raise BenchError(f"the page used OpenSeadragon's {marks['drawer']} drawer, not {drawer}")
    return marks


def reference_fetch(session: Session, tile_path: str) -> float:
    """ms to fetch the DZI descriptor and one tile from a page already open on the server."""
    context = session.context(PRESENTER)
    try:
        page = context.new_page()
        page.goto("/healthz")
        result = page.evaluate(REFERENCE_FETCH, [f"/slides/{session.slide_id}.dzi", tile_path])
    finally:
        context.close()
    if not result["ok"]:
        raise BenchError(f"reference fetch failed: HTTP {result['status']}")
    return float(result["ms"])


@dataclass
class FirstTile:
    cold: list[dict[str, Any]] = field(default_factory=list)
    warm: list[dict[str, Any]] = field(default_factory=list)


def first_tiles(session: Session, drawer: str, cold: int, loads: int) -> FirstTile:
    result = FirstTile()
    for _ in range(cold):  # the first open of the slide since the server started
        session.restart()
        result.cold.append(first_tile_load(session, drawer))
    first_tile_load(session, drawer)  # the server has now seen the first view's tiles; not counted
    for _ in range(loads):
        result.warm.append(first_tile_load(session, drawer))
    return result


@dataclass
class Reference:
    tile_path: str
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)


def references(session: Session, tile_url: str | None, cold: int, loads: int) -> Reference:
    tile_path = urlsplit(tile_url or "").path
    if not tile_path:
        raise BenchError("the page drew a tile but resource timing saw no tile fetched")
    result = Reference(tile_path)
    for _ in range(cold):
        session.restart()
        result.cold.append(reference_fetch(session, tile_path))
    for _ in range(loads):
        result.warm.append(reference_fetch(session, tile_path))
    return result


@dataclass
class Followed:
    sent: list[float] = field(default_factory=list)  # presenter's pan -> presenter sends the view
    applied: list[float] = field(default_factory=list)  # ... -> follower's viewport set
    drawn: list[float] = field(default_factory=list)  # ... -> follower's frame at that view drawn
    raw: list[float] = field(
        default_factory=list
    )  # awareness field set -> follower's change, before each move
    raw_idle: list[float] = field(default_factory=list)  # the same, viewers idle
    skew_ms: float = 0.0  # the two pages' clock offsets, removed from every latency


def probe(presenter: Page, follower: Page, n: int, offsets: tuple[float, float]) -> float:
    """One raw awareness round trip, presenter -> server -> follower, in ms."""
    follower.evaluate("(n) => Object.assign(window.__bench, { probe: n, probeAt: null })", n)
    t0 = float(presenter.evaluate(PRESENTER_PROBE, n)) - offsets[0]
    try:
        follower.wait_for_function("window.__bench.probeAt !== null", timeout=MOVE_TIMEOUT_MS)
    except PlaywrightError as exc:
        raise BenchError(f"probe {n} never reached the follower") from exc
    return float(follower.evaluate("window.__bench.probeAt")) - offsets[1] - t0


def idle(page: Page) -> None:
    """Wait until the viewer has every tile of its view (best effort)."""
    try:
        page.wait_for_function("window.collab.viewer.world.getItemAt(0).getFullyLoaded()", timeout=TIMEOUT_MS)
    except PlaywrightError:
        pass
    time.sleep(0.2)


def follow(
    session: Session, drawer: str, moves: int, field_width: float, spacing_s: float, seed: int
) -> Followed:
    """The follower follows the presenter across ``moves`` immediate pans."""
    result = Followed()
    presenter_ctx, follower_ctx = session.context(PRESENTER), session.context(FOLLOWER)
    try:
        presenter, follower = presenter_ctx.new_page(), follower_ctx.new_page()
        presenter_id = open_case(presenter, session, drawer)
        open_case(follower, session, drawer)
        follower.wait_for_function(
            "(id) => window.collab.awareness.getStates().has(id)", arg=presenter_id, timeout=TIMEOUT_MS
        )
        offsets = (float(presenter.evaluate(CLOCK_OFFSET)), float(follower.evaluate(CLOCK_OFFSET)))
        result.skew_ms = offsets[1] - offsets[0]
        for page in (presenter, follower):
            page.evaluate(RECORDER, presenter_id)
        follower.evaluate("(id) => window.collab.presence.follow(id)", presenter_id)

        # Start at a realistic magnification in the middle of the slide.
        slide = session.slide_id
        size = presenter.evaluate(
            "(() => { const s = window.collab.viewer.world.getItemAt(0).getContentSize(); return [s.x, s.y]; })()"
        )
        width, height = float(size[0]), float(size[1])
        x, y = width / 2, height / 2
        start = {"slide": slide, "x": x, "y": y, "width": field_width, "rotation": 0}
        for page in (presenter, follower):
            page.evaluate(WATCH, start)
        presenter.evaluate("(v) => window.collab.slideView.goTo(v, true)", start)
        try:
            follower.wait_for_function("window.__bench.drawn !== null", timeout=TIMEOUT_MS)
        except PlaywrightError as exc:
            raise BenchError(f"the follower never reached the presenter's first view {start}") from exc
        idle(presenter)
        idle(follower)
        for n in range(IDLE_PROBES):
            result.raw_idle.append(probe(presenter, follower, -1 - n, offsets))
            time.sleep(0.05)

        rng = random.Random(seed)
        sign_x = sign_y = 1.0
        for n in range(moves):
            time.sleep(spacing_s)
            result.raw.append(probe(presenter, follower, n, offsets))
            # 0.05 to 1.5 fields across, up to 1 down, alternating, kept inside the slide.
            sign_x, sign_y = -sign_x, (-sign_y if n % 2 else sign_y)
            dx = sign_x * rng.uniform(0.05, 1.5) * field_width
            dy = sign_y * rng.uniform(0.0, 1.0) * field_width
            if not 0.1 * width < x + dx < 0.9 * width:
                dx = -dx
            if not 0.1 * height < y + dy < 0.9 * height:
                dy = -dy
            x, y = x + dx, y + dy
            target = {"slide": slide, "x": x, "y": y, "width": field_width, "rotation": 0}
            for page in (presenter, follower):
                page.evaluate(WATCH, target)
            t0 = float(presenter.evaluate(PRESENTER_PAN, [x, y])) - offsets[0]
            try:
                follower.wait_for_function("window.__bench.drawn !== null", timeout=MOVE_TIMEOUT_MS)
            except PlaywrightError as exc:
                view = follower.evaluate("window.collab.slideView.view()")
                raise BenchError(f"move {n}: the follower never reached {target} (it is at {view})") from exc
            sent = presenter.evaluate("window.__bench.sent")
            marks = follower.evaluate("({ applied: window.__bench.applied, drawn: window.__bench.drawn })")
            if sent is not None:
                result.sent.append(float(sent) - offsets[0] - t0)
            result.applied.append(float(marks["applied"]) - offsets[1] - t0)
            result.drawn.append(float(marks["drawn"]) - offsets[1] - t0)
        if follower.evaluate("window.collab.presence.following") != presenter_id:
            raise BenchError("the follower stopped following during the run")
    finally:
        presenter_ctx.close()
        follower_ctx.close()
    return result


def launch(playwright: Playwright, drawer: str, headed: bool) -> Browser:
    args = list(DRAWER_FLAGS[drawer])
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
    try:
        return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=not headed, args=args)
    except PlaywrightError as exc:
        raise BenchError(f"could not launch {CHROMIUM}: {exc}") from exc


def report(
    args: argparse.Namespace,
    size: tuple[int, ...],
    reference: Reference,
    results: dict[str, tuple[FirstTile, Followed]],
    errors: list[str],
) -> None:
    def stats(values: list[float]) -> str:
        top = max(values, default=float("nan"))
        return f"{len(values)} | {ms(pct(values, 0.5))} | {ms(pct(values, 0.95))} | {ms(top)}"

    def verdict(value: float, limit: float) -> str:
        return f"p95 < {limit:.0f}: " + ("met" if value < limit else "**missed**")

    def ratio(ours: list[float], ref: list[float]) -> str:
        return f"p50 {pct(ours, 0.5) / pct(ref, 0.5):.1f}x, p95 {pct(ours, 0.95) / pct(ref, 0.95):.1f}x"

    print(
        f"\n### Follow and first tile: one {size[0]} x {size[1]} slide, pages 1280 x 800, headless Chromium\n"
    )
    print("| measure | drawer | n | p50 ms | p95 ms | max ms | ours / reference | target |")
    print("|---|---|---|---|---|---|---|---|")
    for drawer, (tiles, followed) in results.items():
        print(
            f"| follow: presenter pans -> follower's frame drawn there | {drawer} | {stats(followed.drawn)} "
            f"| {ratio(followed.drawn, followed.raw)} | {verdict(pct(followed.drawn, 0.95), FOLLOW_TARGET_P95_MS)} |"
        )
        print(
            f"| follow: presenter pans -> follower's viewport set | {drawer} | {stats(followed.applied)} "
            f"| {ratio(followed.applied, followed.raw)} | |"
        )
        print(
            f"| raw awareness round trip, before each move (reference) | {drawer} | {stats(followed.raw)} | | |"
        )
        print(f"| raw awareness round trip, viewers idle | {drawer} | {stats(followed.raw_idle)} | | |")
    for drawer, (tiles, _) in results.items():
        cold = [float(m["drawn"]) for m in tiles.cold]
        warm = [float(m["drawn"]) for m in tiles.warm]
        print(
            f"| first tile, cold (first open after server start) | {drawer} | {stats(cold)} "
            f"| p50 {pct(cold, 0.5) / pct(reference.cold, 0.5):.1f}x | {verdict(pct(cold, 0.95), FIRST_TILE_TARGET_MS)} |"
        )
        print(
            f"| first tile, warm | {drawer} | {stats(warm)} | p50 {pct(warm, 0.5) / pct(reference.warm, 0.5):.1f}x "
            f"| {verdict(pct(warm, 0.95), FIRST_TILE_TARGET_MS)} |"
        )
    print(f"| fetch DZI + first tile, cold (reference) | - | {stats(reference.cold)} | | |")
    print(f"| fetch DZI + first tile, warm (reference) | - | {stats(reference.warm)} | | |")

    print(
        f"\nFollow: {args.moves} immediate pans of 0.05-1.5 fields at a {args.field:g} px field, the next "
        f"{args.spacing * 1000:.0f} ms after the follower caught up; matched = centre within 1% of the field."
    )
    for drawer, (_, followed) in results.items():
        print(
            f"{drawer}: p50 presenter sent {ms(pct(followed.sent, 0.5))}, follower's viewport set "
            f"{ms(pct(followed.applied, 0.5))}, its frame drawn {ms(pct(followed.drawn, 0.5))} ms after the pan; "
            f"page clocks {followed.skew_ms:+.2f} ms apart (removed)."
        )
    print(
        f"\nFirst tile: ms from navigation start, a fresh context per load (signed in, empty cache). Reference: "
        f"`fetch` of the DZI and `{'/'.join(reference.tile_path.split('/')[-2:])}` (the tile the viewer got "
        f"first) from a page already open; cold = just after a server restart. p50 marks (response ends):"
    )
    for drawer, (tiles, _) in results.items():
        for label, loads in (("cold", tiles.cold), ("warm", tiles.warm)):
            parts = []
            for key, name in (
                ("html", "HTML"),
                ("dcl", "DOMContentLoaded"),
                ("dzi", "DZI"),
                ("tile", "tile"),
            ):
                parts.append(
                    f"{name} {ms(pct([float(m[key]) for m in loads if m.get(key) is not None], 0.5))}"
                )
            parts.append(f"drawn {ms(pct([float(m['drawn']) for m in loads], 0.5))}")
            print(f"{drawer} {label}: " + ", ".join(parts))
    if errors:
        print(f"\n{len(errors)} page errors, first: {errors[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--moves", type=int, default=60, help="presenter pans to follow (at least 50 for a p95)"
    )
    parser.add_argument("--loads", type=int, default=10, help="warm fresh page loads of the case")
    parser.add_argument("--cold", type=int, default=3, help="cold page loads (and cold reference fetches)")
    parser.add_argument("--size", default="40000x30000", help="generated slide, level-0 WxH")
    parser.add_argument("--field", type=float, default=4000.0, help="field width while following, level-0 px")
    parser.add_argument(
        "--spacing", type=float, default=0.1, help="seconds between caught up and the next move"
    )
    parser.add_argument(
        "--drawers", default="webgl,canvas", help="OpenSeadragon drawers to run: webgl, canvas"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--headed", action="store_true")
    args = parser.parse_args()
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1024:
        parser.error(f"--size wants WxH, each at least 1024, not {args.size!r}")
    if min(args.moves, args.loads, args.cold) < 1:
        parser.error("--moves, --loads and --cold must be at least 1")
    drawers = [d.strip() for d in args.drawers.split(",") if d.strip()]
    if not drawers or set(drawers) - set(DRAWER_FLAGS):
        parser.error(f"--drawers wants a list of {', '.join(DRAWER_FLAGS)}")

    print(f"$ {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    if not CHROMIUM.exists():
        print(f"follow.py: {CHROMIUM} is missing; this benchmark drives the system Chromium", file=sys.stderr)
        return 2
    if not (REPO / "collab" / "static" / "build" / "viewer.js").exists():
        print(
            "follow.py: collab/static/build/viewer.js is missing; run `npm run build` first", file=sys.stderr
        )
        return 2
    osd = json.loads((REPO / "node_modules" / "openseadragon" / "package.json").read_text())["version"]
    started = time.perf_counter()
    session: Session | None = None
    results: dict[str, tuple[FirstTile, Followed]] = {}
    with tempfile.TemporaryDirectory(prefix="collab-bench-follow-") as name, sync_playwright() as playwright:
        try:
            session = setup(Path(name), size)
            for number, drawer in enumerate(drawers):
                session.browser = browser = launch(playwright, drawer, args.headed)
                try:
                    if number == 0:
                        print(
                            f"nproc {os.cpu_count()}, Python {platform.python_version()}, Chromium {browser.version} "
                            f"({'headed' if args.headed else 'headless'}), Playwright {version('playwright')}, "
                            f"OpenSeadragon {osd}",
                            flush=True,
                        )
                        for username in (PRESENTER, FOLLOWER):
                            session.sign_in(username)
                    tiles = first_tiles(session, drawer, args.cold, args.loads)
                    if number == 0:
                        reference = references(session, tiles.cold[0]["tileUrl"], args.cold, args.loads)
                    print(f"{drawer}: first tile done at {time.perf_counter() - started:.0f} s", flush=True)
                    followed = follow(session, drawer, args.moves, args.field, args.spacing, args.seed)
                    print(f"{drawer}: follow done at {time.perf_counter() - started:.0f} s", flush=True)
                    results[drawer] = (tiles, followed)
                finally:
                    browser.close()
        except (BenchError, PlaywrightError, RuntimeError) as exc:
            print(f"follow.py: failed: {exc}", file=sys.stderr)
            if session is not None:
                for line in session.errors[-10:]:
                    print(f"  page error: {line}", file=sys.stderr)
                log = session.data_dir / "server.log"
                if log.exists():
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    print("  server log (tail):\n    " + "\n    ".join(tail), file=sys.stderr)
            return 1
        finally:
            if session is not None:
                stop_server(session.server)
    report(args, size, reference, results, session.errors)
    print(f"\nrun took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
