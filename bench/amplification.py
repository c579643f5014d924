"""What one participant can make the server do with a little input.

    .venv/bin/python bench/amplification.py [--seconds 10] [--flooders 8] [--rate 20] [--watched]

1. One post to a discussion of 16,000 and 32,000 messages, one edit of 1,000 messages at
   once, and one refused forgery, each timed on a room in this process (the work the event
   loop does for that frame).
2. A case of about 5 MiB on `collab serve`: `--flooders` read-only sockets each send a sync
   step 1 (4 bytes: "send me everything") `--rate` times a second for `--seconds`, and
   reconnect whenever they are closed, as an attacker would. Printed: the /healthz median
   and p90 meanwhile (against the same server idle, in the same run), the bytes pulled and
   the connections the flooders needed. With `--watched`, another reader stays in the room
   throughout (else the room empties whenever all flooders are closed, and is loaded again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets
from pycrdt import Array, Doc, Map, YMessageType, YSyncMessageType, write_var_uint

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collab.sync.protocol import Frame  # noqa: E402
from collab.sync.room import Rejected, Room  # noqa: E402

COLLAB = [sys.executable, "-m", "collab"]
STEP1_EMPTY = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP1]) + write_var_uint(1) + b"\x00"


class Peer:
    def __init__(self, user_id: int, contribute: bool = True) -> None:
        self.user_id = user_id
        self.contribute = contribute
        self.moderate = False
        self.chairs = False
        self.identity: dict[str, Any] = {"id": user_id}

    def send(self, data: bytes) -> None:
        pass


def discussion(count: int, author: int = 1) -> bytes:
    doc: Doc[Any] = Doc(client_id=7)
    doc["discussion"] = Array(
        [
            Map({"id": f"m{n}", "author": str(author), "text": f"message {n} " + "words " * 40})
            for n in range(count)
        ]
    )
    return doc.get_update()


def timed_update(room: Room, peer: Peer, doc: Doc[Any], change: Any) -> float:
    since = doc.get_state()
    change(doc.get("discussion", type=Array))
    frame = Frame(YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE, doc.get_update(since))
    start = time.perf_counter()
    with contextlib.suppress(Rejected):
        room.receive(peer, frame)
    return time.perf_counter() - start


def post_of(message_id: str) -> Any:
    return lambda messages: messages.append(Map({"id": message_id, "author": "1", "text": "hi"}))


def edit_last(edits: int, count: int) -> Any:
    def edit(messages: Array[Any]) -> None:
        for n in range(count - edits, count):
            messages[n]["text"] = "edited"

    return edit


def in_process() -> None:
    for count in (16_000, 32_000):
        update = discussion(count)
        room = Room("case", [update], lambda case_id, update: None)
        mine: Doc[Any] = Doc(client_id=11)
        mine.apply_update(update)
        me = Peer(1)
        first = timed_update(room, me, mine, post_of("a"))
        post = timed_update(room, me, mine, post_of("b"))
        edits = timed_update(room, me, mine, edit_last(1000, count))
        forger: Doc[Any] = Doc(client_id=12)
        forger.apply_update(room.doc.get_update())
        forged = timed_update(room, Peer(2), forger, edit_last(1, count))
        rebuild = timed_update(room, me, mine, post_of("c"))
        print(
            f"{count} messages: first change after loading {first * 1000:.0f} ms, one post "
            f"{post * 1000:.1f} ms, 1,000 edits in one update {edits * 1000:.0f} ms, a refused "
            f"forgery {forged * 1000:.1f} ms, the change after it {rebuild * 1000:.0f} ms"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(data: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [*COLLAB, *args, "--data-dir", str(data)], input=stdin, capture_output=True, text=True, check=True
    ).stdout.strip()


def healthz(url: str) -> float:
    start = time.perf_counter()
    urllib.request.urlopen(url + "/healthz", timeout=30).read()
    return (time.perf_counter() - start) * 1000


async def sample_health(url: str, seconds: float) -> list[float]:
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        samples.append(await asyncio.to_thread(healthz, url))
        await asyncio.sleep(0.05)
    return samples


async def flooder(url: str, token: str, rate: float, seconds: float, pulled: list[int]) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pulled[1] += 1  # connections
        try:
            async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None
            ) as ws:

                async def read() -> None:
                    async for data in ws:
                        pulled[0] += len(data)

                reader = asyncio.create_task(read())
                reader.add_done_callback(lambda task: task.cancelled() or task.exception())
                while time.perf_counter() < end and not reader.done():
                    await ws.send(STEP1_EMPTY)
                    await asyncio.sleep(1 / rate)
                reader.cancel()
        except (websockets.ConnectionClosed, OSError):
            pass


def report(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    median = statistics.median(ordered)
    return f"{name}: /healthz median {median:.1f} ms, p90 {p90:.1f} ms ({len(ordered)} samples)"


def on_a_server(seconds: float, flooders: int, rate: float, watched: bool) -> None:
    data = Path(tempfile.mkdtemp(prefix="amplification-"))
    run(data, "orgs", "add", "Bench Trust")
    run(data, "users", "add", "reader", "--role", "clinician", "--org", "Bench Trust", "--password-stdin",
        stdin="bench-password-not-secret\n")  # fmt: skip
    token = run(data, "users", "token", "reader")
    run(data, "users", "add", "watcher", "--role", "clinician", "--org", "Bench Trust", "--password-stdin",
        stdin="bench-password-not-secret\n")  # fmt: skip
    watcher_token = run(data, "users", "token", "watcher")
    run(data, "cases", "add", "BENCH-1", "--org", "Bench Trust")
    update = discussion(18_000)
    with sqlite3.connect(data / "collab.sqlite3") as db:
        case_id = db.execute("SELECT id FROM cases").fetchone()[0]
        db.execute("INSERT INTO doc_updates (case_id, update_data) VALUES (?, ?)", (case_id, update))
    port = free_port()
    process = subprocess.Popen(
        [*COLLAB, "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                healthz(url)
                break
            except OSError:
                time.sleep(0.05)

        async def scenario() -> None:
            idle = await sample_health(url, min(seconds, 5))
            ws_url = f"ws://127.0.0.1:{port}/ws/cases/{case_id}"
            headers = {"Authorization": f"Bearer {watcher_token}"}
            # Someone else in the room all along keeps it loaded (as in a meeting).
            watcher = (
                await websockets.connect(ws_url, additional_headers=headers, max_size=None)
                if watched
                else None
            )
            pulled = [0, 0]
            flood = [
                asyncio.create_task(flooder(ws_url, token, rate, seconds, pulled)) for _ in range(flooders)
            ]
            await asyncio.sleep(1)
            busy = await sample_health(url, seconds - 1)
            await asyncio.gather(*flood)
            if watcher is not None:
                await watcher.close()
            print(f"case document: {len(update) / 2**20:.1f} MiB")
            print(report("idle", idle))
            print(report(f"{flooders} sockets x {rate:g} step 1/s", busy))
            print(
                f"the flooders pulled {pulled[0] / 2**20:.0f} MiB"
                f" over {pulled[1]} connections in {seconds:g} s"
            )

        asyncio.run(scenario())
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flooders", type=int, default=8)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--skip-room", action="store_true", help="only the server part")
    parser.add_argument("--watched", action="store_true", help="another reader stays in the room throughout")
    options = parser.parse_args()
    if not options.skip_room:
        in_process()
    on_a_server(options.seconds, options.flooders, options.rate, options.watched)


if __name__ == "__main__":
    main()
