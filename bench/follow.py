"""Follow latency and time to first tile, in real headless Chromium against a real `collab serve`.

    .venv/bin/python bench/follow.py [--moves 60] [--loads 10] [--cold 3] [--size 40000x30000]

One generated slide (``collab.slides.demo``, default 40000 x 30000) in case S26-1 of a fresh data
dir; people sign in through the login form; every page is 1280 x 800 on the system Chromium.

Follow: north.trainee follows north.path (``presence.follow``). The presenter pans `--moves` times
(``viewport.panTo(point, true)``: varied distances, alternating directions), each time once the
follower has caught up. Latency runs from the presenter's call to the follower's first frame drawn
at the new view (``update-viewport``, centre within 1% of the field width), and to the moment the
follower's viewport was set (its awareness ``change``). Reference: the raw awareness round trip
without the viewer, ``awareness.setLocalStateField('probe', n)`` in the presenter to the follower's
``awareness.on('change')`` seeing it, interleaved with the moves. Both pages run in one browser,
so times are compared on one clock (``performance.timeOrigin + performance.now()``, each page's
offset to ``Date.now()`` measured and removed).

First tile: a fresh browser context (signed in, empty cache) opens ``/cases/{id}``; the page's own
``performance.now()`` when ``#viewer`` gets ``data-first-tile="drawn"`` (a MutationObserver from an
init script) is the time since navigation start. Cold: the first open of the slide after a server
start (`--cold` restarts); warm: `--loads` more. Reference: ``fetch`` of the DZI descriptor and of
the tile the viewer received first, from a page already open on the server, cold and warm.
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402
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
FOLLOW_TARGET_P95_MS = 150.0
FIRST_TILE_TARGET_MS = 1000.0

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

# In the follower: records when its view first matches window.__bench.target (as set by evaluate),
# both when its viewport is set (awareness change, after presence's own handler) and when the frame at
# that view is drawn (update-viewport); and when the presenter's probe value arrives.
FOLLOWER_RECORDER = """(presenter) => {
  const c = window.collab;
  const now = () => performance.timeOrigin + performance.now();
  const b = (window.__bench = { target: null, applied: null, drawn: null, probe: null, probeAt: null });
  const matches = () => {
    const v = c.slideView.view(), t = b.target, tol = t.width / 100;
    return v && v.slide === t.slide && Math.abs(v.x - t.x) < tol && Math.abs(v.y - t.y) < tol
      && Math.abs(v.width - t.width) < tol;
  };
  c.viewer.addHandler("update-viewport", () => {
    if (!b.target || b.drawn !== null || !matches()) return;
    b.drawn = now();
    if (b.applied === null) b.applied = b.drawn;
  });
  c.awareness.on("change", () => {
    const t = now();
    if (b.target && b.applied === null && matches()) b.applied = t;
    if (b.probe !== null && b.probeAt === null) {
      const state = c.awareness.getStates().get(presenter);
      if (state && state.probe === b.probe) b.probeAt = t;
    }
  });
}"""

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


def run(*args: str, data_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "collab", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode:
        raise BenchError(f"collab {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


@dataclass
class Session:
    """A server with case S26-1 and one slide, a browser, and signed-in people's cookies."""

    browser: Browser
    data_dir: Path
    server: Server
    case_id: str
    slide_id: str
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

    def sign_in(self, username: str) -> None:
        """Sign in through the login form once; later contexts reuse the cookies."""
        context = self.browser.new_context(base_url=self.url, viewport=VIEWPORT)
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
        context = self.browser.new_context(
            base_url=self.url, viewport=VIEWPORT, storage_state=self.states[username]
        )
        context.add_init_script(FIRST_TILE_OBSERVER)
        context.on("weberror", lambda error: self.errors.append(f"{username}: {error.error}"))
        return context


def open_case(page: Page, session: Session) -> int:
    """Open the case, wait for a drawn tile and a live connection; the awareness client id."""
    page.goto(f"/cases/{session.case_id}")
    page.wait_for_selector("#viewer[data-first-tile=drawn]", state="attached", timeout=TIMEOUT_MS)
    page.wait_for_selector("#connection[data-state=connected]", state="attached", timeout=TIMEOUT_MS)
    return int(page.evaluate("window.collab.awareness.clientID"))


def first_tile_load(session: Session) -> dict[str, Any]:
    """One fresh page load of the case: marks in ms since navigation start."""
    context = session.context(PRESENTER)
    try:
        page = context.new_page()
        page.goto(f"/cases/{session.case_id}", wait_until="commit")
        page.wait_for_function("window.__firstTile !== undefined", timeout=TIMEOUT_MS)
        marks = dict(page.evaluate(FIRST_TILE_MARKS))
    finally:
        context.close()
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
class FollowResult:
    drawn: list[float] = field(default_factory=list)  # presenter's pan -> follower's frame at that view
    applied: list[float] = field(default_factory=list)  # presenter's pan -> follower's viewport set
    raw: list[float] = field(default_factory=list)  # awareness field set -> follower's change event
    skew_ms: float = 0.0  # the two pages' clock offsets, removed from every latency


def follow(session: Session, moves: int, field_width: float, spacing_s: float, seed: int) -> FollowResult:
    """The follower follows the presenter across ``moves`` immediate pans."""
    result = FollowResult()
    presenter_ctx, follower_ctx = session.context(PRESENTER), session.context(FOLLOWER)
    try:
        presenter, follower = presenter_ctx.new_page(), follower_ctx.new_page()
        presenter_id = open_case(presenter, session)
        open_case(follower, session)
        follower.wait_for_function(
            "(id) => window.collab.awareness.getStates().has(id)", arg=presenter_id, timeout=TIMEOUT_MS
        )
        presenter_offset = float(presenter.evaluate(CLOCK_OFFSET))
        follower_offset = float(follower.evaluate(CLOCK_OFFSET))
        result.skew_ms = follower_offset - presenter_offset
        follower.evaluate(FOLLOWER_RECORDER, presenter_id)
        follower.evaluate("(id) => window.collab.presence.follow(id)", presenter_id)

        # Start at a realistic magnification in the middle of the slide.
        slide = session.slide_id
        width, height = (
            float(v)
            for v in presenter.evaluate(
                "(() => { const s = window.collab.viewer.world.getItemAt(0).getContentSize(); "
                "return [s.x, s.y]; })()"
            )
        )
        x, y = width / 2, height / 2
        start = {"slide": slide, "x": x, "y": y, "width": field_width, "rotation": 0}
        follower.evaluate(
            "(t) => Object.assign(window.__bench, { target: t, applied: null, drawn: null })", start
        )
        presenter.evaluate("(v) => window.collab.slideView.goTo(v, true)", start)
        follower.wait_for_function("window.__bench.drawn !== null", timeout=TIMEOUT_MS)
        time.sleep(0.5)  # let the first view's tiles arrive

        rng = random.Random(seed)
        sign_x = sign_y = 1.0
        for n in range(moves):
            # Varied distances (0.05 to 1.5 fields), alternating directions, kept inside the slide.
            sign_x, sign_y = -sign_x, -sign_y if n % 2 else sign_y
            dx = sign_x * rng.uniform(0.05, 1.5) * field_width
            dy = sign_y * rng.uniform(0.0, 1.0) * field_width
            if not 0.1 * width < x + dx < 0.9 * width:
                dx = -dx
            if not 0.1 * height < y + dy < 0.9 * height:
                dy = -dy
            x, y = x + dx, y + dy
            target = {"slide": slide, "x": x, "y": y, "width": field_width, "rotation": 0}
            follower.evaluate(
                "(t) => Object.assign(window.__bench, { target: t, applied: null, drawn: null })", target
            )
            t0 = float(presenter.evaluate(PRESENTER_PAN, [x, y])) - presenter_offset
            try:
                follower.wait_for_function("window.__bench.drawn !== null", timeout=5000)
            except PlaywrightError as exc:
                view = follower.evaluate("window.collab.slideView.view()")
                raise BenchError(f"move {n}: the follower never reached {target} (it is at {view})") from exc
            marks = follower.evaluate("({ applied: window.__bench.applied, drawn: window.__bench.drawn })")
            result.drawn.append(marks["drawn"] - follower_offset - t0)
            result.applied.append(marks["applied"] - follower_offset - t0)

            # The same hop without the viewer: one awareness field, presenter to follower.
            follower.evaluate("(n) => Object.assign(window.__bench, { probe: n, probeAt: null })", n)
            t0 = float(presenter.evaluate(PRESENTER_PROBE, n)) - presenter_offset
            try:
                follower.wait_for_function("window.__bench.probeAt !== null", timeout=5000)
            except PlaywrightError as exc:
                raise BenchError(f"probe {n} never reached the follower") from exc
            result.raw.append(float(follower.evaluate("window.__bench.probeAt")) - follower_offset - t0)
            time.sleep(spacing_s)
        if follower.evaluate("window.collab.presence.following") != presenter_id:
            raise BenchError("the follower stopped following during the run")
    finally:
        presenter_ctx.close()
        follower_ctx.close()
    return result


def setup(browser: Browser, tmp: Path, size: tuple[int, ...]) -> Session:
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
    server = start_server(data_dir)
    session = Session(browser, data_dir, server, str(case_id), slide_id)
    for username in (PRESENTER, FOLLOWER):
        session.sign_in(username)
    return session


def ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--moves", type=int, default=60, help="presenter pans to follow (at least 50 for p95)"
    )
    parser.add_argument("--loads", type=int, default=10, help="warm fresh page loads of the case")
    parser.add_argument("--cold", type=int, default=3, help="cold page loads (and cold reference fetches)")
    parser.add_argument("--size", default="40000x30000", help="generated slide, level-0 WxH")
    parser.add_argument("--field", type=float, default=4000.0, help="field width while following, level-0 px")
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between moves, once caught up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--headed", action="store_true")
    args = parser.parse_args()
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1024:
        parser.error(f"--size wants WxH, each at least 1024, not {args.size!r}")
    if args.moves < 1 or args.loads < 1 or args.cold < 1:
        parser.error("--moves, --loads and --cold must be at least 1")
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
    launch: dict[str, Any] = {"executable_path": str(CHROMIUM), "headless": not args.headed}
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        launch["args"] = ["--no-sandbox"]  # Chromium's sandbox refuses to run as root
    session: Session | None = None
    with tempfile.TemporaryDirectory(prefix="collab-bench-follow-") as name, sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(**launch)
        except PlaywrightError as exc:
            print(f"follow.py: could not launch {CHROMIUM}: {exc}", file=sys.stderr)
            return 2
        print(
            f"nproc {os.cpu_count()}, Python {platform.python_version()}, "
            f"Chromium {browser.version} ({'headed' if args.headed else 'headless'}), "
            f"Playwright {playwright_version()}, OpenSeadragon {osd}",
            flush=True,
        )
        try:
            session = setup(browser, Path(name), size)
            cold, cold_ref, warm, warm_ref = [], [], [], []
            for _ in range(args.cold):  # the first open of the slide since the server started
                session.restart()
                cold.append(first_tile_load(session))
            tile_path = urlsplit(cold[0]["tileUrl"] or "").path if cold else ""
            if not tile_path:
                first = first_tile_load(session)
                tile_path = urlsplit(first["tileUrl"] or "").path
            if not tile_path:
                raise BenchError("the page drew a tile but fetched none that resource timing saw")
            for _ in range(args.cold):
                session.restart()
                cold_ref.append(reference_fetch(session, tile_path))
            first_tile_load(session)  # warms the server for the first view, not counted
            for _ in range(args.loads):
                warm.append(first_tile_load(session))
                warm_ref.append(reference_fetch(session, tile_path))
            print(f"first tile: {len(cold)} cold and {len(warm)} warm loads done", flush=True)
            followed = follow(session, args.moves, args.field, args.spacing, args.seed)
        except (BenchError, PlaywrightError, RuntimeError) as exc:
            print(f"follow.py: failed: {exc}", file=sys.stderr)
            if session is not None:
                for line in session.errors[-10:]:
                    print(f"  page error: {line}", file=sys.stderr)
                log = session.data_dir / "server.log"
                if log.exists():
                    print(
                        "  server log (tail):\n    " + "\n    ".join(log.read_text().splitlines()[-15:]),
                        file=sys.stderr,
                    )
            return 1
        finally:
            if session is not None:
                stop_server(session.server)
            browser.close()
    elapsed = time.perf_counter() - started
    report(args, size, tile_path, cold, cold_ref, warm, warm_ref, followed, session.errors, elapsed)
    return 0


def playwright_version() -> str:
    from importlib.metadata import version

    return version("playwright")


def report(
    args: argparse.Namespace,
    size: tuple[int, ...],
    tile_path: str,
    cold: list[dict[str, Any]],
    cold_ref: list[float],
    warm: list[dict[str, Any]],
    warm_ref: list[float],
    followed: FollowResult,
    errors: list[str],
    elapsed: float,
) -> None:
    raw50, raw95 = pct(followed.raw, 0.5), pct(followed.raw, 0.95)
    cold_drawn = [float(m["drawn"]) for m in cold]
    warm_drawn = [float(m["drawn"]) for m in warm]
    ref_cold50, ref_warm50 = pct(cold_ref, 0.5), pct(warm_ref, 0.5)

    def stats(values: list[float]) -> str:
        top = max(values, default=float("nan"))
        return f"{len(values)} | {ms(pct(values, 0.5))} | {ms(pct(values, 0.95))} | {ms(top)}"

    def verdict(value: float, limit: float) -> str:
        return "met" if value < limit else "**missed**"

    print(
        f"\n### Follow and first tile: one {size[0]} x {size[1]} slide, pages 1280 x 800, headless Chromium\n"
    )
    print("| measure | n | p50 ms | p95 ms | max ms | reference | ours / reference | target |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| follow: presenter pans -> follower's frame drawn there | {stats(followed.drawn)} "
        f"| raw awareness p50 {ms(raw50)} / p95 {ms(raw95)} "
        f"| p50 {pct(followed.drawn, 0.5) / raw50:.2f}x, p95 {pct(followed.drawn, 0.95) / raw95:.2f}x "
        f"| p95 < {FOLLOW_TARGET_P95_MS:.0f}: {verdict(pct(followed.drawn, 0.95), FOLLOW_TARGET_P95_MS)} |"
    )
    print(
        f"| follow: presenter pans -> follower's viewport set | {stats(followed.applied)} "
        f"| raw awareness p50 {ms(raw50)} / p95 {ms(raw95)} "
        f"| p50 {pct(followed.applied, 0.5) / raw50:.2f}x, p95 {pct(followed.applied, 0.95) / raw95:.2f}x | |"
    )
    print(f"| raw awareness round trip (reference) | {stats(followed.raw)} | | | |")
    print(
        f"| first tile, cold (first open after server start) | {stats(cold_drawn)} "
        f"| fetch DZI + tile, cold p50 {ms(ref_cold50)} | p50 {pct(cold_drawn, 0.5) / ref_cold50:.1f}x "
        f"| p95 < {FIRST_TILE_TARGET_MS:.0f}: {verdict(pct(cold_drawn, 0.95), FIRST_TILE_TARGET_MS)} |"
    )
    print(
        f"| first tile, warm | {stats(warm_drawn)} | fetch DZI + tile, warm p50 {ms(ref_warm50)} "
        f"| p50 {pct(warm_drawn, 0.5) / ref_warm50:.1f}x "
        f"| p95 < {FIRST_TILE_TARGET_MS:.0f}: {verdict(pct(warm_drawn, 0.95), FIRST_TILE_TARGET_MS)} |"
    )
    print(f"| fetch DZI + one tile, cold (reference) | {stats(cold_ref)} | | | |")
    print(f"| fetch DZI + one tile, warm (reference) | {stats(warm_ref)} | | | |")

    def marks(loads: list[dict[str, Any]]) -> str:
        parts = []
        for key, label in (
            ("html", "HTML"),
            ("dcl", "DOMContentLoaded"),
            ("dzi", "DZI"),
            ("tile", "first tile"),
        ):
            values = [float(m[key]) for m in loads if m.get(key) is not None]
            parts.append(f"{label} {ms(pct(values, 0.5))}")
        return ", ".join(parts) + f", drawn {ms(pct([float(m['drawn']) for m in loads], 0.5))}"

    print(
        f"\nFollow: {len(followed.drawn)} immediate pans of 0.05-1.5 fields at a {args.field:g} px field, "
        f"{args.spacing * 1000:.0f} ms apart once caught up; centre within 1% of the field; page clocks "
        f"{followed.skew_ms:+.2f} ms apart (removed). Reference: `awareness.setLocalStateField` -> "
        f"the follower's `change`, interleaved with the moves."
    )
    print(
        f"First tile: ms from navigation start, fresh context each load (empty cache, signed in). "
        f"p50 marks (response end): cold {marks(cold)}; warm {marks(warm)}. Reference: `fetch` of "
        f"the DZI and tile `{'/'.join(tile_path.split('/')[-2:])}` (the viewer's first) "
        f"from a page already open; cold = after a server restart."
    )
    if errors:
        print(f"\n{len(errors)} page errors, first: {errors[0]}")
    print(f"\nrun took {elapsed:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
