"""Analyses started without a command line: queued when a slide is registered (as configured
per analysis), or on demand by a contributor from the case page, and run by the worker process
the server starts beside itself, which is started again if it dies. Cancelling, refusals and
the audit trail."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collab.analysis.registry import installed
from collab.store.database import Database
from tests.conftest import (
    add_user,
    api_token,
    collab,
    connect_db,
    database_for,
    seed_case,
    sign_in_with_form,
    start_server,
    stop_server,
    write_pyramid_tiff,
)

PLUGIN = "pale-areas"
WAIT_S = 60.0

pytestmark = pytest.mark.skipif(
    PLUGIN not in installed(), reason="the example plug-in is not installed (bash scripts/setup --test)"
)


def _until(check: Callable[[], Any], what: str) -> Any:
    """Polls ``check`` until it gives something truthy; fails saying ``what`` did not happen."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"within {WAIT_S:.0f} s: {what}")


def _audit(data_dir: Path) -> list[tuple[str, str, str | None]]:
    with connect_db(data_dir) as db:
        rows = db.execute(
            "SELECT event, detail, username FROM audit WHERE event LIKE 'analysis %' ORDER BY id"
        ).fetchall()
    return [(event, detail, username) for event, detail, username in rows]


def _workers_of(pid: int) -> list[int]:
    """The analysis worker processes the server ``pid`` started."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"analyses\0worker" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_a_new_slide_gets_the_configured_analyses_from_the_servers_own_worker(data_dir: Path) -> None:
    seed_case(data_dir)
    server = start_server(data_dir, args=["--analysis-workers", "1"])
    try:
        tiff = write_pyramid_tiff(data_dir / "a.tiff", 2048, 1536, levels=3)
        added = collab(
            "slides",
            "add",
            str(tiff),
            "--case",
            "S26-1",
            "--analyse-on-registration",
            PLUGIN,
            data_dir=data_dir,
        )
        assert added.returncode == 0, added.stderr
        slide = added.stdout.split("\t")[0]
        token = {"Authorization": f"Bearer {api_token(data_dir, 'north.path')}"}
        url = f"/api/slides/{slide}/analyses"
        (result,) = _until(lambda: server.get(url, headers=token).json(), "the queued analysis ran")
        assert (result["name"], result["source"]) == (PLUGIN, "collab")
        (job,) = server.get(f"{url}/jobs", headers=token).json()
        assert (job["state"], job["progress"], job["result_id"]) == ("done", 1.0, result["id"])
        assert _audit(data_dir)[0] == (
            "analysis requested",
            f"{PLUGIN}, job 1, on registration",
            "(on registration)",
        )
        assert _audit(data_dir)[-1][0] == "analysis finished"

        # The worker yields the CPU to the server: it runs at a lower priority (nice 10).
        (worker,) = _workers_of(server.process.pid)
        fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
        # (At most 19, the lowest priority there is: a test run may itself be niced.)
        assert int(fields[16]) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)

        # The worker dies: the server starts another, which runs what is asked next.
        os.kill(worker, signal.SIGKILL)
        (again,) = _until(lambda: [w for w in _workers_of(server.process.pid) if w != worker], "a new worker")
        asked = server.client.post(f"{url}/jobs", json={"name": PLUGIN}, headers=token)
        assert asked.status_code == 202, asked.text
        _until(
            lambda: [
                j
                for j in server.get(f"{url}/jobs", headers=token).json()
                if j["id"] == asked.json()["id"] and j["state"] == "done"
            ],
            "the new worker ran the job",
        )
        assert again in _workers_of(server.process.pid)
    finally:
        stop_server(server)
    # It stopped with the server.
    assert (
        not Path(f"/proc/{again}").exists() or b"zombie" in Path(f"/proc/{again}/status").read_bytes().lower()
    )


def test_a_contributor_runs_and_cancels_an_analysis_others_may_not(data_dir: Path) -> None:
    """No worker here: the job waits in the queue, where it is cancelled."""
    seed_case(data_dir)
    tiff = write_pyramid_tiff(data_dir / "a.tiff", 2048, 1536, levels=3)
    added = collab("slides", "add", str(tiff), "--case", "S26-1", data_dir=data_dir)
    slide = added.stdout.split("\t")[0]
    add_user(data_dir, "north.onc", "clinician", "North Trust")
    assert collab("orgs", "add", "South Trust", data_dir=data_dir).returncode == 0
    add_user(data_dir, "south.path", "pathologist", "South Trust")
    server = start_server(data_dir)
    people = []
    try:
        people = [sign_in_with_form(server, name) for name in ("north.path", "north.onc", "south.path")]
        path, onc, south = people
        url = f"/api/slides/{slide}/analyses/jobs"
        csrf = {"X-CSRF-Token": path.csrf}
        assert path.client.get("/api/analyses").json()["analyses"] == installed()
        assert path.client.post(url, json={"name": PLUGIN}).status_code == 403  # no CSRF token
        refused = path.client.post(url, json={"name": "magic"}, headers=csrf)
        assert refused.status_code == 422 and PLUGIN in refused.json()["detail"]
        assert (
            onc.client.post(url, json={"name": PLUGIN}, headers={"X-CSRF-Token": onc.csrf}).status_code == 403
        )
        assert (
            south.client.post(url, json={"name": PLUGIN}, headers={"X-CSRF-Token": south.csrf}).status_code
            == 404
        )

        asked = path.client.post(url, json={"name": PLUGIN}, headers=csrf)
        assert asked.status_code == 202 and asked.json()["state"] == "queued"
        twice = path.client.post(url, json={"name": PLUGIN}, headers=csrf)
        assert (twice.status_code, twice.json()["id"]) == (200, asked.json()["id"])
        assert [j["state"] for j in onc.client.get(url).json()] == ["queued"]  # readers follow it too

        cancel = f"/api/analysis-jobs/{asked.json()['id']}/cancel"
        assert south.client.post(cancel, headers={"X-CSRF-Token": south.csrf}).status_code == 404
        assert onc.client.post(cancel, headers={"X-CSRF-Token": onc.csrf}).status_code == 403
        assert path.client.post(cancel).status_code == 403  # no CSRF token
        cancelled = path.client.post(cancel, headers=csrf)
        assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
        assert path.client.post(cancel, headers=csrf).status_code == 409
        # An ended job stays in the list a while, so the page can say how it ended.
        assert [j["state"] for j in path.client.get(url).json()] == ["cancelled"]
    finally:
        for person in people:
            person.client.close()
        stop_server(server)
    assert [(e, d) for e, d, _ in _audit(data_dir)] == [
        ("analysis requested", f"{PLUGIN}, job 1"),
        ("analysis cancelled", f"{PLUGIN}, job 1, asked for"),
    ]


def test_an_unknown_analysis_to_run_on_registration_is_refused_clearly(data_dir: Path) -> None:
    seed_case(data_dir)
    tiff = write_pyramid_tiff(data_dir / "a.tiff", 512, 512, levels=1)
    refused = collab(
        "slides", "add", str(tiff), "--case", "S26-1", "--analyse-on-registration", "magic", data_dir=data_dir
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "collab: --analyse-on-registration: no analysis is called 'magic' (installed: "
    )
    with connect_db(data_dir) as db:
        assert db.execute("SELECT count(*) FROM slides").fetchone()[0] == 0


def test_a_stopped_worker_hands_its_job_back_without_using_up_an_attempt(data_dir: Path) -> None:
    seed_case(data_dir)
    tiff = write_pyramid_tiff(data_dir / "a.tiff", 512, 512, levels=1)
    slide = collab("slides", "add", str(tiff), "--case", "S26-1", data_dir=data_dir).stdout.split("\t")[0]

    async def run() -> None:
        async with Database(data_dir / "collab.sqlite3", database_for(data_dir)) as db:
            job_id = await db.analyses.enqueue(slide, PLUGIN, requested_by=None)
            assert await db.analyses.claim(job_id) is not None
            await db.analyses.release(job_id)
            job = await db.analyses.job(job_id)
            assert job is not None and (job.state, job.attempts, job.progress) == ("queued", 0, 0.0)

    asyncio.run(run())
