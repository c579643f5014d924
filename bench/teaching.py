"""A teaching session of 100 students: how fast the educator's view reaches everyone.

    .venv/bin/python bench/teaching.py [--students 100] [--browsers 2] [--seconds 10] [--rate 20]

One educator moves their view (awareness) `--rate` times a second for `--seconds`
while `--students` protocol-level students (Python websocket clients that joined with
the code and a display name, as the join form does) and `--browsers` students in real
Chromium follow; every student also moves a pointer once a second. Then a quiz: the
educator asks, every student answers, the educator reveals, and we time how long the
scatter takes to reach each student.

The reference is the same class (educator and students, same messages) in one room
of `@y/websocket-server` 0.1.1 (npm), which relays every awareness message to every
client. Printed: educator-to-student latency p50/p99, share delivered, server CPU
(percent of one core), and ours / reference ratios; browser-side latency; quiz timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from pycrdt import Doc, YMessageType, YSyncMessageType, create_sync_message

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.sync import COLLAB, cpu_seconds, free_port, start_reference, wait_http  # noqa: E402
from bench.sync import Result as Run  # noqa: E402
from collab.slides.demo import generate_demo_slide  # noqa: E402
from collab.sync.protocol import AwarenessEntry, encode_awareness, parse, parse_awareness  # noqa: E402

PASSWORD = "bench-password-not-secret"
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Class:
    """A running server with one teaching session, and how to reach it."""

    process: subprocess.Popen[bytes]
    base: str
    session_id: str
    code: str
    data_dir: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_class(tmp: Path) -> Class:
    data = Path(tempfile.mkdtemp(prefix="teaching-", dir=tmp))

    def run(*a: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [*COLLAB, *a, "--data-dir", str(data)], input=stdin, capture_output=True, text=True, check=True
        ).stdout.strip()

    run("orgs", "add", "Teaching Trust")
    run(
        "users", "add", "educator", "--role", "pathologist", "--org", "Teaching Trust",
        "--name", "Dr Educator", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    run("cases", "add", "TEACH-1", "--org", "Teaching Trust")
    slide = data / "teaching-slide.tiff"
    generate_demo_slide(slide, l0_width=8000, l0_height=6000, seed=3)
    run("slides", "add", str(slide), "--case", "TEACH-1")
    printed = run("teaching", "add", "Bench class", "--educator", "educator", "--case", "TEACH-1")
    code = re.search(r"/join/([A-Za-z0-9-]+)", printed)
    assert code, printed
    with sqlite3.connect(data / "collab.sqlite3") as db:
        session_id = db.execute("SELECT id FROM teaching_sessions").fetchone()[0]
    port = free_port()
    process = subprocess.Popen(
        [*COLLAB, "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", process)
    return Class(process, base, session_id, code[1], data)


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found[1]


async def sign_in_educator(c: Class) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=c.base, timeout=30)
    login = await client.get("/login")
    signed = await client.post(
        "/login", data={"username": "educator", "password": PASSWORD, "csrf": csrf_in(login.text)}
    )
    assert signed.status_code == 303, signed.text
    return client


async def join(c: Class, name: str) -> httpx.AsyncClient:
    """A student's HTTP client after the join form, holding the participant cookie."""
    client = httpx.AsyncClient(base_url=c.base, timeout=30)
    form = await client.get(f"/join/{c.code}")
    joined = await client.post("/join", data={"code": c.code, "name": name, "csrf": csrf_in(form.text)})
    assert joined.status_code == 303, joined.text
    return client


@dataclass
class Listener:
    """One protocol-level client: what it received, and when."""

    ws: Any
    view_ms: list[float] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)  # perf_counter_ns of each document update
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        try:
            async for data in self.ws:
                if isinstance(data, str):
                    continue
                now = time.perf_counter_ns()
                frame = parse(data)
                if frame.kind == YMessageType.SYNC and frame.sync_kind == YSyncMessageType.SYNC_UPDATE:
                    self.updates.append(now)
                elif frame.kind == YMessageType.AWARENESS:
                    for entry in parse_awareness(frame.payload):
                        if '"t":' in entry.state_json:
                            state = json.loads(entry.state_json)
                            if state.get("presenting"):
                                self.view_ms.append((now - state["t"]) / 1e6)
        except websockets.ConnectionClosed:
            pass


async def connect(url: str, headers: dict[str, str]) -> Listener:
    ws = await websockets.connect(url, additional_headers=headers, max_queue=None, compression=None)
    await ws.send(create_sync_message(Doc()))  # as a y-websocket client greets
    listener = Listener(ws)
    listener.task = asyncio.create_task(listener.read())
    return listener


async def lesson(
    pid: int,
    educator: Listener,
    educator_id: int,
    students: list[tuple[Listener, int]],
    seconds: float,
    rate: float,
    slide: str = "s",
) -> Run:
    """The educator pans at ``rate`` Hz; each student moves a pointer at 1 Hz. Measured at students."""
    for student, _ in students:
        student.view_ms.clear()
    cpu0 = cpu_seconds(pid)
    start = time.perf_counter()
    moves = int(seconds * rate)

    async def educate() -> None:
        client_id = 7_000_000
        for clock in range(1, moves + 1):
            await asyncio.sleep(max(0.0, start + clock / rate - time.perf_counter()))
            state = {
                "user": {"id": educator_id, "name": "Dr Educator"},
                "view": {"slide": slide, "x": 2000 + 5 * clock, "y": 1500, "width": 2000, "rotation": 0},
                "presenting": True,
                "t": time.perf_counter_ns(),
                "wall": time.time() * 1000,
            }
            await educator.ws.send(encode_awareness([AwarenessEntry(client_id, clock, json.dumps(state))]))

    async def fidget(listener: Listener, user_id: int, n: int) -> None:
        client_id = 8_000_000 + n
        for clock in range(1, int(seconds) + 1):
            await asyncio.sleep(max(0.0, start + clock - (n % 100) / 100 - time.perf_counter()))
            state = {"user": {"id": user_id, "name": f"Student {n}"}, "pointer": {"x": clock, "y": n}}
            await listener.ws.send(encode_awareness([AwarenessEntry(client_id, clock, json.dumps(state))]))

    await asyncio.gather(educate(), *(fidget(s, uid, n) for n, (s, uid) in enumerate(students)))
    await asyncio.sleep(1.0)  # the last messages arrive
    cpu = cpu_seconds(pid) - cpu0
    elapsed = time.perf_counter() - start
    latencies = [ms for student, _ in students for ms in student.view_ms]
    return Run(latencies, len(latencies) / (moves * len(students)), 100 * cpu / elapsed)


async def ours(args: argparse.Namespace, tmp: Path, browser_count: int) -> dict[str, Any]:
    c = start_class(tmp)
    try:
        educator_http = await sign_in_educator(c)
        educator_state = (await educator_http.get(f"/teach/{c.session_id}/state.json")).json()
        ws_url = c.base.replace("http://", "ws://") + f"/ws/teaching/{c.session_id}"
        cookie = "; ".join(f"{k}={v}" for k, v in educator_http.cookies.items())
        educator = await connect(ws_url, {"Cookie": cookie})
        students: list[tuple[Listener, int]] = []
        https: list[tuple[httpx.AsyncClient, str]] = []
        for n in range(args.students):
            http = await join(c, f"Student {n}")
            state = (await http.get(f"/teach/{c.session_id}/state.json")).json()
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
            students.append((await connect(ws_url, {"Cookie": cookie}), int(state["user"]["id"])))
            https.append((http, state["csrf"]))
        browsers = await open_browsers(c, browser_count)
        await asyncio.sleep(1.0)  # greetings (sync, awareness) settle before measuring
        run = await lesson(
            c.process.pid,
            educator,
            int(educator_state["user"]["id"]),
            students,
            args.seconds,
            args.rate,
            educator_state["slides"][0]["id"],  # the browsers follow onto the real slide
        )
        browser_ms = await browsers.latencies()
        quiz = await quiz_round(c, educator_http, educator_state, https, [s for s, _ in students])
        await browsers.close()
        for listener in [educator, *(s for s, _ in students)]:
            await listener.ws.close()
        return {"run": run, "browser_ms": browser_ms, "quiz": quiz}
    finally:
        c.stop()


async def quiz_round(
    c: Class,
    educator: httpx.AsyncClient,
    educator_state: dict[str, Any],
    students: list[tuple[httpx.AsyncClient, str]],
    listeners: list[Listener],
) -> dict[str, float]:
    """Ask, every student answers at once, reveal: time to collect, and reveal-to-scatter latency."""
    slide = educator_state["slides"][0]
    headers = {"X-CSRF-Token": educator_state["csrf"]}
    asked = await educator.post(
        f"/teach/{c.session_id}/quiz",
        json={"question": "Click the mitosis", "slide": slide["id"]},
        headers=headers,
    )
    assert asked.status_code == 200, asked.text
    question = asked.json()["id"]
    start = time.perf_counter()
    answers = await asyncio.gather(
        *(
            http.post(
                f"/teach/{c.session_id}/quiz/answer",
                json={"question": question, "x": 100 + n, "y": 200 + n},
                headers={"X-CSRF-Token": csrf},
            )
            for n, (http, csrf) in enumerate(students)
        )
    )
    collect_s = time.perf_counter() - start
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
    for listener in listeners:
        listener.updates.clear()
    t0 = time.perf_counter_ns()
    revealed = await educator.post(f"/teach/{c.session_id}/quiz/reveal", json={}, headers=headers)
    assert revealed.status_code == 200 and revealed.json()["revealed"] == len(students), revealed.text
    deadline = time.monotonic() + 10
    while any(not listener.updates for listener in listeners) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    reached = sorted((listener.updates[0] - t0) / 1e6 for listener in listeners if listener.updates)
    return {
        "answers": len(students),
        "collect_ms": 1000 * collect_s,
        "reveal_p50_ms": reached[len(reached) // 2] if reached else float("nan"),
        "reveal_max_ms": reached[-1] if reached else float("nan"),
        "reached": len(reached) / len(listeners),
    }


class Browsers:
    """Students in real Chromium, joined through the form; the page records when views arrive."""

    def __init__(self, playwright: Any, browser: Any, pages: list[Any]) -> None:
        self.playwright, self.browser, self.pages = playwright, browser, pages

    async def latencies(self) -> list[float]:
        found: list[float] = []
        for page in self.pages:
            found.extend(await page.evaluate("window.__viewMs || []"))
        return found

    async def close(self) -> None:
        if self.browser:
            await self.browser.close()
        if self.playwright:
            await self.playwright.stop()


async def open_browsers(c: Class, count: int) -> Browsers:
    if count == 0:
        return Browsers(None, None, [])
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    launch: dict[str, Any] = {"args": ["--no-sandbox"]}
    if SYSTEM_CHROMIUM.exists():
        launch["executable_path"] = str(SYSTEM_CHROMIUM)
    browser = await playwright.chromium.launch(**launch)
    pages = []
    for n in range(count):
        page = await (await browser.new_context(base_url=c.base)).new_page()
        await page.goto(f"/join/{c.code}")
        await page.fill("input[name=name]", f"Browser student {n}")
        await page.click("form button[type=submit]")
        await page.wait_for_function("window.collab && window.collab.awareness", timeout=30_000)
        # The time each educator view reaches this page (same machine: one wall clock).
        await page.evaluate(
            """() => {
                window.__viewMs = [];
                const seen = new Set();
                window.collab.awareness.on("change", () => {
                    const now = Date.now();
                    for (const s of window.collab.awareness.getStates().values()) {
                        if (s && s.presenting && s.wall && !seen.has(s.wall)) {
                            seen.add(s.wall);
                            window.__viewMs.push(now - s.wall);
                        }
                    }
                });
            }"""
        )
        pages.append(page)
    return Browsers(playwright, browser, pages)


async def reference(args: argparse.Namespace) -> Run:
    target = start_reference(1)
    try:
        educator = await connect(target.urls[0], {})
        students = [(await connect(target.urls[0], {}), -(n + 1)) for n in range(args.students)]
        await asyncio.sleep(1.0)
        run = await lesson(target.process.pid, educator, 1, students, args.seconds, args.rate)
        for listener in [educator, *(s for s, _ in students)]:
            await listener.ws.close()
        return run
    finally:
        target.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ratio(ours_value: float, reference_value: float) -> str:
    return f"{ours_value / max(reference_value, 0.01):.2f}x"


def report(args: argparse.Namespace, run: Run, ref: Run, mine: dict[str, Any]) -> None:
    print(
        f"Teaching session: {args.students} protocol students + {args.browsers} browsers, "
        f"educator view {args.rate:g}/s for {args.seconds:g} s, each student's pointer 1/s\n"
    )
    print("| | ours | reference | ours / reference |")
    print("|---|---|---|---|")
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        ours_ms, ref_ms = run.pct(q), ref.pct(q)
        print(f"| view to students {label} (ms) | {ours_ms:.1f} | {ref_ms:.1f} | {ratio(ours_ms, ref_ms)} |")
    print(f"| delivered | {100 * run.delivered:.1f}% | {100 * ref.delivered:.1f}% | |")
    print(
        f"| server CPU (% of a core) | {run.cpu_percent:.1f}% | {ref.cpu_percent:.1f}% "
        f"| {ratio(run.cpu_percent, ref.cpu_percent)} |"
    )
    if args.browsers:
        also: Run = mine["run"]
        browser_ms = mine["browser_ms"]
        print(
            f"\nWith {args.browsers} Chromium students following on the same machine: protocol "
            f"students p50 {also.pct(0.5):.1f} ms, p99 {also.pct(0.99):.1f} ms, "
            f"delivered {100 * also.delivered:.1f}%, server CPU {also.cpu_percent:.1f}%"
        )
        print(
            f"In the browsers: {len(browser_ms)} views arrived, p50 {pct(browser_ms, 0.5):.1f} ms, "
            f"p99 {pct(browser_ms, 0.99):.1f} ms (into the page's awareness)"
        )
    q = mine["quiz"]
    print(
        f"\nQuiz: {q['answers']} answers posted at once, all stored in {q['collect_ms']:.0f} ms; "
        f"the reveal reached {100 * q['reached']:.0f}% of students, p50 {q['reveal_p50_ms']:.1f} ms, "
        f"last {q['reveal_max_ms']:.1f} ms after the educator's click"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--browsers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20, help="educator view changes per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Like for like first (protocol clients only), then with the browsers on the same machine.
        alone = asyncio.run(ours(args, Path(tmp), 0))
        ref = asyncio.run(reference(args))
        mine = asyncio.run(ours(args, Path(tmp), args.browsers)) if args.browsers else alone
    run: Run = alone["run"]
    report(args, run, ref, mine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
