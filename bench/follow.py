"""Follow latency and time to first tile, in real headless Chromium against a real `collab serve`.

    .venv/bin/python bench/follow.py [--moves 60] [--loads 10] [--cold 3] [--size 40000x30000]

One generated slide (``collab.slides.demo``, default 40000 x 30000) in case S26-1 of a fresh data
dir; people sign in through the login form; every page is 1280 x 800 on the system Chromium.
The page uses OpenSeadragon's 2D canvas drawer (``drawer: "canvas"`` in static/src/slideview.js),
which the benchmark checks, because on machines without a GPU (virtual desktops are common in
hospitals) WebGL is emulated on the CPU: measured here, the WebGL drawer took 1.3 s to the first
tile (vs 0.5 s) and ~1 s p95 to follow (vs 0.07 s).

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
# ruff: noqa: E402 (imports after the sys.path entry for tests.conftest)

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shlex
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import PASSWORD, Server, add_slides, add_user, seed_case, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
PRESENTER, FOLLOWER = "north.path", "north.trainee"
TIMEOUT_MS = 15_000
MOVE_TIMEOUT_MS = 10_000
IDLE_PROBES = 20
FOLLOW_TARGET_P95_MS = 150.0
FIRST_TILE_TARGET_MS = 1000.0
FULLY_DRAWN_MARGIN_MS = 100.0  # the follower's p95 to fully drawn, at most the presenter's own + this

# Marks, in every document, the moment #viewer says its first tile is drawn (ms since navigation start).
FIRST_TILE_OBSERVER = """new MutationObserver((_, observer) => {
  if (document.getElementById("viewer")?.dataset.firstTile !== "drawn") return;
  window.__firstTile = performance.now();
  observer.disconnect();
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-first-tile"] });"""

FIRST_TILE_MARKS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const dzi = resources.find((r) => r.name.includes(".dzi"));
  const tiles = resources.filter((r) => r.name.includes("_files/"));
  const tile = tiles.sort((a, b) => a.responseEnd - b.responseEnd)[0];
  return { drawn: window.__firstTile, drawer: window.collab?.viewer.drawer.getType(), html: nav?.responseEnd,
    dcl: nav?.domContentLoadedEventEnd, dzi: dzi?.responseEnd, tile: tile?.responseEnd, tileUrl: tile?.name };
}"""
# The marks summarised under the table: key, name.
MARKS = [("html", "HTML"), ("dcl", "DOMContentLoaded"), ("dzi", "DZI"), ("tile", "tile"), ("drawn", "drawn")]

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
  const b = { target: null, sent: null, applied: null, drawn: null, full: null, probe: null, probeAt: null };
  window.__bench = b;
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
    if (!b.target || !matches(c.slideView.view())) return;
    const t = now();
    if (b.drawn === null) b.drawn = t;
    if (b.applied === null) b.applied = b.drawn;
    // Fully drawn: the frame just drawn at this view had every tile it needs at the level it
    // shows (OpenSeadragon's world update, which decides that, runs before the frame is drawn).
    if (b.full === null && c.viewer.world.getItemAt(0).getFullyLoaded()) b.full = t;
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

WATCH = (
    "(t) => Object.assign(window.__bench, { target: t, sent: null, applied: null, drawn: null, full: null })"
)

PRESENTER_PAN = """([x, y]) => {
  const viewer = window.collab.viewer, point = viewer.world.getItemAt(0).imageToViewportCoordinates(x, y);
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


def waited(page: Page, expression: str, timeout_ms: int) -> bool:
    """Whether ``expression`` became true in ``page`` within the timeout."""
    # As a function: Playwright evaluates a bare expression with eval, which the page's
    # Content Security Policy refuses (no 'unsafe-eval'); a function it calls directly.
    with contextlib.suppress(PlaywrightError):
        page.wait_for_function(f"() => {expression}", timeout=timeout_ms)
        return True
    return False


@dataclass
class Session:
    """A server with case S26-1 and one slide, the browser, and signed-in people's cookies."""

    data_dir: Path
    server: Server
    case_id: str
    slide_id: str
    browser: Browser
    states: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def restart(self) -> None:
        """Stop the server and start it again on the same port: its caches are empty again."""
        port = urlsplit(self.server.url).port
        stop_server(self.server)
        self.server = start_server(self.data_dir, port=port)

    @contextlib.contextmanager
    def page(self, username: str) -> Iterator[Page]:
        """A page in a fresh context (empty cache) with ``username``'s cookies if any, recording errors."""
        state = self.states.get(username)
        context = self.browser.new_context(base_url=self.server.url, viewport=VIEWPORT, storage_state=state)
        with context:
            context.add_init_script(FIRST_TILE_OBSERVER)
            context.on("weberror", lambda error: self.errors.append(f"{username}: {error.error}"))
            yield context.new_page()

    def sign_in(self, username: str) -> None:
        """Sign in through the login form once; later pages reuse the cookies."""
        with self.page(username) as page:
            page.goto("/login")
            page.locator("input[name=username]").fill(username)
            page.locator("input[name=password]").fill(PASSWORD)
            with page.expect_navigation():
                page.locator("form.login button[type=submit]").click()
            if urlsplit(page.url).path == "/login":
                alert = " ".join(page.locator("[role=alert]").all_inner_texts()) or "?"
                raise BenchError(f"{username} could not sign in: {alert}")
            self.states[username] = page.context.storage_state()


def setup(tmp: Path, width: int, height: int, browser: Browser) -> Session:
    """Slide, data dir (people, case, slide) and a running server."""
    from collab.slides.demo import generate_demo_slide

    data_dir, slide = tmp / "data", tmp / "demo.tiff"
    data_dir.mkdir()
    started = time.perf_counter()
    generate_demo_slide(slide, l0_width=width, l0_height=height)
    print(f"generated {slide.name} {width} x {height} in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        seed_case(data_dir)
        add_user(data_dir, FOLLOWER, "trainee", "North Trust", "--name", "North Trainee")
        (slide_id,) = add_slides(data_dir, slide)
    except AssertionError as exc:
        raise BenchError(f"could not seed the data dir: {exc}") from exc
    with sqlite3.connect(data_dir / "collab.sqlite3") as db:
        (case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()
    return Session(data_dir, start_server(data_dir), str(case_id), slide_id, browser)


def first_tile_load(session: Session) -> dict[str, Any]:
    """One fresh page load of the case: marks in ms since navigation start."""
    with session.page(PRESENTER) as page:
        page.goto(f"/cases/{session.case_id}", wait_until="commit")
        if not waited(page, "window.__firstTile !== undefined", TIMEOUT_MS):
            raise BenchError(f"no tile drawn {TIMEOUT_MS} ms after opening the case")
        marks = dict(page.evaluate(FIRST_TILE_MARKS))
    if marks["drawer"] != "canvas":
        raise BenchError(
            f"the page uses OpenSeadragon's {marks['drawer']} drawer, not canvas, which this benchmark "
            'measures (`drawer: "canvas"` in static/src/slideview.js; is the build stale? `npm run build`)'
        )
    return marks


def reference_fetch(session: Session, tile_path: str) -> float:
    """ms to fetch the DZI descriptor and one tile from a page already open on the server."""
    with session.page(PRESENTER) as page:
        page.goto("/healthz")
        result = page.evaluate(REFERENCE_FETCH, [f"/slides/{session.slide_id}.dzi", tile_path])
    if not result["ok"]:
        raise BenchError(f"reference fetch failed: HTTP {result['status']}")
    return float(result["ms"])


@dataclass
class FirstTile:
    cold: list[dict[str, Any]] = field(default_factory=list)  # page loads' marks, ms since navigation start
    warm: list[dict[str, Any]] = field(default_factory=list)
    tile_path: str = ""  # the tile the viewer received first
    ref_cold: list[float] = field(default_factory=list)  # fetch of the DZI and that tile, ms
    ref_warm: list[float] = field(default_factory=list)


def first_tiles(session: Session, cold: int, loads: int) -> FirstTile:
    """Page loads, then reference fetches: ``cold`` just after a server restart each, then ``loads`` warm."""
    result = FirstTile()
    for _ in range(cold):
        session.restart()
        result.cold.append(first_tile_load(session))
    first_tile_load(session)  # the server has now seen the first view's tiles; not counted
    result.warm = [first_tile_load(session) for _ in range(loads)]
    result.tile_path = urlsplit(result.cold[0]["tileUrl"] or "").path
    if not result.tile_path:
        raise BenchError("the page drew a tile but resource timing saw no tile fetched")
    for _ in range(cold):
        session.restart()
        result.ref_cold.append(reference_fetch(session, result.tile_path))
    result.ref_warm = [reference_fetch(session, result.tile_path) for _ in range(loads)]
    return result


@dataclass
class Followed:
    sent: list[float] = field(default_factory=list)  # presenter's pan -> presenter sends the view
    applied: list[float] = field(default_factory=list)  # ... -> follower's viewport set
    drawn: list[float] = field(default_factory=list)  # ... -> follower's frame at that view drawn
    full: list[float] = field(default_factory=list)  # ... -> follower's view fully drawn (every tile)
    own_full: list[float] = field(default_factory=list)  # ... -> presenter's own view fully drawn
    raw: list[float] = field(default_factory=list)  # awareness field set -> follower's change, each move
    raw_idle: list[float] = field(default_factory=list)  # the same, viewers idle
    skew_ms: float = 0.0  # the two pages' clock offsets, removed from every latency


def probe(presenter: Page, follower: Page, n: int, offsets: tuple[float, float]) -> float:
    """One raw awareness round trip, presenter -> server -> follower, in ms."""
    follower.evaluate("(n) => Object.assign(window.__bench, { probe: n, probeAt: null })", n)
    t0 = float(presenter.evaluate(PRESENTER_PROBE, n)) - offsets[0]
    if not waited(follower, "window.__bench.probeAt !== null", MOVE_TIMEOUT_MS):
        raise BenchError(f"probe {n} never reached the follower")
    return float(follower.evaluate("window.__bench.probeAt")) - offsets[1] - t0


def go(presenter: Page, follower: Page, view: dict[str, Any], action: str, arg: Any, timeout_ms: int) -> Any:
    """Both pages watch for ``view``; the presenter runs ``action``: its result, once the follower drew it."""
    for page in (presenter, follower):
        page.evaluate(WATCH, view)
    result = presenter.evaluate(action, arg)
    if not waited(follower, "window.__bench.drawn !== null", timeout_ms):
        at = follower.evaluate("window.collab.slideView.view()")
        raise BenchError(f"the follower never reached {view} (it is at {at})")
    for page, who in ((presenter, "presenter"), (follower, "follower")):
        if not waited(page, "window.__bench.full !== null", timeout_ms):
            raise BenchError(f"the {who}'s view at {view} was never fully drawn")
    return result


def follow(session: Session, moves: int, field_width: float, spacing_s: float, seed: int) -> Followed:
    """The follower follows the presenter across ``moves`` immediate pans."""
    result = Followed()
    with session.page(PRESENTER) as presenter, session.page(FOLLOWER) as follower:
        for page in (presenter, follower):  # the case open, a tile drawn, connected
            page.goto(f"/cases/{session.case_id}")
            for selector in ("#viewer[data-first-tile=drawn]", "#connection[data-state=connected]"):
                page.wait_for_selector(selector, state="attached", timeout=TIMEOUT_MS)
        presenter_id = int(presenter.evaluate("window.collab.awareness.clientID"))
        if not waited(follower, f"window.collab.awareness.getStates().has({presenter_id})", TIMEOUT_MS):
            raise BenchError("the follower never saw the presenter's awareness state")
        offsets = (float(presenter.evaluate(CLOCK_OFFSET)), float(follower.evaluate(CLOCK_OFFSET)))
        result.skew_ms = offsets[1] - offsets[0]
        for page in (presenter, follower):
            page.evaluate(RECORDER, presenter_id)
        follower.evaluate("(id) => window.collab.presence.follow(id)", presenter_id)

        # Start at a realistic magnification in the middle of the slide, with every tile loaded.
        size = presenter.evaluate("window.collab.viewer.world.getItemAt(0).getContentSize()")
        width, height = float(size["x"]), float(size["y"])
        x, y = width / 2, height / 2
        start = {"slide": session.slide_id, "x": x, "y": y, "width": field_width, "rotation": 0}
        go(presenter, follower, start, "(v) => window.collab.slideView.goTo(v, true)", start, TIMEOUT_MS)
        for page in (presenter, follower):
            waited(page, "window.collab.viewer.world.getItemAt(0).getFullyLoaded()", TIMEOUT_MS)
            time.sleep(0.2)
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
            x += dx if 0.1 * width < x + dx < 0.9 * width else -dx
            y += dy if 0.1 * height < y + dy < 0.9 * height else -dy
            target = {**start, "x": x, "y": y}
            t0 = float(go(presenter, follower, target, PRESENTER_PAN, [x, y], MOVE_TIMEOUT_MS)) - offsets[0]
            sent = presenter.evaluate("window.__bench.sent")
            result.own_full.append(float(presenter.evaluate("window.__bench.full")) - offsets[0] - t0)
            marks = follower.evaluate("({ ...window.__bench })")
            result.full.append(float(marks["full"]) - offsets[1] - t0)
            if sent is not None:
                result.sent.append(float(sent) - offsets[0] - t0)
            result.applied.append(float(marks["applied"]) - offsets[1] - t0)
            result.drawn.append(float(marks["drawn"]) - offsets[1] - t0)
        if follower.evaluate("window.collab.presence.following") != presenter_id:
            raise BenchError("the follower stopped following during the run")
    return result


def report(args: argparse.Namespace, tiles: FirstTile, f: Followed) -> None:
    def row(label: str, values: list[float], ref: list[float] | None = None, limit=0.0, p95=False) -> None:
        """n, p50, p95, max; ours / reference at p50 (and p95); the target for p95."""
        q50, q95 = pct(values, 0.5), pct(values, 0.95)
        cells = [str(len(values)), ms(q50), ms(q95), ms(max(values, default=float("nan"))), "", ""]
        if ref is not None:
            cells[4] = f"p50 {q50 / pct(ref, 0.5):.1f}x"
            cells[4] += f", p95 {q95 / pct(ref, 0.95):.1f}x" if p95 else ""
        if limit:
            cells[5] = f"p95 < {limit:.0f}: " + ("met" if q95 < limit else "**missed**")
        print(f"| {label} | " + " | ".join(cells) + " |")

    size = args.size.lower().replace("x", " x ")
    print(f"\n### Follow and first tile: one {size} slide, pages 1280 x 800, headless Chromium\n")
    print("| measure | n | p50 ms | p95 ms | max ms | ours / reference | target |")
    print("|---|---|---|---|---|---|---|")
    cold, warm = ([float(m["drawn"]) for m in loads] for loads in (tiles.cold, tiles.warm))
    row("follow: presenter pans -> follower's frame drawn there", f.drawn, f.raw, FOLLOW_TARGET_P95_MS, True)
    row("follow: presenter pans -> follower's viewport set", f.applied, f.raw, p95=True)
    row("fully drawn: presenter pans -> follower's view fully drawn", f.full, f.own_full, p95=True)
    row("fully drawn: presenter pans -> presenter's own view fully drawn (reference)", f.own_full)
    row("raw awareness, before each move (reference)", f.raw)
    row("raw awareness, viewers idle", f.raw_idle)
    row("first tile, cold (first open after server start)", cold, tiles.ref_cold, FIRST_TILE_TARGET_MS)
    row("first tile, warm", warm, tiles.ref_warm, FIRST_TILE_TARGET_MS)
    row("fetch DZI + first tile, cold (reference)", tiles.ref_cold)
    row("fetch DZI + first tile, warm (reference)", tiles.ref_warm)

    print(
        f"\nFollow: {args.moves} immediate pans of 0.05-1.5 fields at a {args.field:g} px field, the next "
        f"{args.spacing * 1000:.0f} ms after the follower caught up; matched = centre within 1% of the field."
    )
    print(
        f"p50 after the pan: presenter sent {ms(pct(f.sent, 0.5))}, follower's viewport set "
        f"{ms(pct(f.applied, 0.5))}, its frame drawn {ms(pct(f.drawn, 0.5))} ms; "
        f"page clocks {f.skew_ms:+.2f} ms apart (removed)."
    )
    gap = pct(f.full, 0.95) - pct(f.own_full, 0.95)
    print(
        f"Fully drawn (every tile the view needs, at its level, in the frame drawn): the follower's p95 is "
        f"{gap:+.0f} ms from the presenter's own; target at most +{FULLY_DRAWN_MARGIN_MS:.0f} ms: "
        + ("met" if gap <= FULLY_DRAWN_MARGIN_MS else "**missed**")
        + "."
    )
    tile = "/".join(tiles.tile_path.split("/")[-2:])
    print(
        f"\nFirst tile: ms from navigation start, a fresh context per load (signed in, empty cache). "
        f"Reference: `fetch` of the DZI and `{tile}` (the tile the viewer got first) from a page already "
        f"open; cold = just after a server restart. p50 marks (response ends):"
    )
    for label, loads in (("cold", tiles.cold), ("warm", tiles.warm)):
        marks = {name: [m[key] for m in loads if m[key] is not None] for key, name in MARKS}
        print(f"{label}: " + ", ".join(f"{name} {ms(pct(values, 0.5))}" for name, values in marks.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--moves", type=int, default=60, help="presenter pans to follow (50+ for a p95)")
    parser.add_argument("--loads", type=int, default=10, help="warm fresh page loads of the case")
    parser.add_argument("--cold", type=int, default=3, help="cold page loads (and cold reference fetches)")
    parser.add_argument("--size", default="40000x30000", help="generated slide, level-0 WxH")
    parser.add_argument("--field", type=float, default=4000.0, help="field width while following, level-0 px")
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds from caught up to the next move")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--headed", action="store_true")
    args = parser.parse_args()
    match = re.fullmatch(r"(\d+)x(\d+)", args.size.lower())
    width, height = (int(match[1]), int(match[2])) if match else (0, 0)
    if min(width, height) < 1024:
        parser.error(f"--size wants WxH, each at least 1024, not {args.size!r}")
    if min(args.moves, args.loads, args.cold) < 1:
        parser.error("--moves, --loads and --cold must be at least 1")

    print(f"$ {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    for path, missing in (
        (CHROMIUM, "this benchmark drives the system Chromium"),
        (REPO / "collab/static/build/viewer.js", "run `npm run build` first"),
    ):
        if not path.exists():
            print(f"follow.py: {path} is missing; {missing}", file=sys.stderr)
            return 2
    osd = json.loads((REPO / "node_modules/openseadragon/package.json").read_text())["version"]
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses to run as root
    started = time.perf_counter()
    session: Session | None = None
    with tempfile.TemporaryDirectory(prefix="collab-bench-follow-") as name, sync_playwright() as playwright:
        try:
            launch = playwright.chromium.launch
            with launch(executable_path=CHROMIUM, headless=not args.headed, args=sandbox) as browser:
                session = setup(Path(name), width, height, browser)
                print(
                    f"nproc {os.cpu_count()}, Python {platform.python_version()}, Chromium {browser.version} "
                    f"({'headed' if args.headed else 'headless'}), Playwright {version('playwright')}, "
                    f"OpenSeadragon {osd} (canvas drawer)",
                    flush=True,
                )
                for username in (PRESENTER, FOLLOWER):
                    session.sign_in(username)
                tiles = first_tiles(session, args.cold, args.loads)
                print(f"first tile done at {time.perf_counter() - started:.0f} s", flush=True)
                followed = follow(session, args.moves, args.field, args.spacing, args.seed)
                print(f"follow done at {time.perf_counter() - started:.0f} s", flush=True)
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
    report(args, tiles, followed)
    if session.errors:
        print(f"\n{len(session.errors)} page errors, first: {session.errors[0]}")
    print(f"\nrun took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
