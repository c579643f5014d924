"""``collab demo`` on an empty data dir: generated slides, people, cases, then a server."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from collab.demo import DEMO_PASSWORD
from tests.conftest import free_port

UK = ZoneInfo("Europe/London")


def test_demo_seeds_and_serves(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "collab", "demo", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "Uvicorn running on" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=120) and process.poll() is None, "".join(lines)
        output = "".join(lines)
        assert f"password '{DEMO_PASSWORD}'" in output
        assert re.search(r"north\.path\s+pathologist", output)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            form = client.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf
            signed_in = client.post(
                "/login",
                data={"username": "north.path", "password": DEMO_PASSWORD, "csrf": csrf[1], "next": "/"},
            )
            assert signed_in.status_code == 303
            worklist = client.get("/api/worklist").json()
            assert [c["accession"] for c in worklist["cases"]] == [
                "DEMO-24-0101",
                "DEMO-24-0102",
                "DEMO-24-0103",
            ]
            # One MDT meeting, chaired by north.path, with two cases on its agenda.
            [meeting] = worklist["meetings"]
            # Upcoming whenever the demo is made: next Tuesday, 13:00 UK time (stored in UTC).
            starts = datetime.fromisoformat(meeting["starts"]).replace(tzinfo=UTC).astimezone(UK)
            today = datetime.now(UK).date()
            assert meeting["name"] == "Breast MDT" and (starts.weekday(), starts.hour, starts.minute) == (
                1,
                13,
                0,
            )
            assert today < starts.date() <= today + timedelta(days=7)
            page = client.get(f"/meetings/{meeting['id']}").text
            assert page.index("DEMO-24-0101") < page.index("DEMO-24-0102")
            slide = worklist["cases"][0]["slides"][0]["id"]
            meta = client.get(f"/api/slides/{slide}").json()
            assert (meta["width"], meta["height"], meta["mpp_x"]) == (46000, 32000, 0.25)
            assert client.get(f"/slides/{slide}_files/15/40_30.jpeg").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
        reader.join(timeout=10)
        process.stderr.close()
