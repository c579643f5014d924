"""Slide analyses as an operator and a plug-in author meet them: the example plug-in
(examples/analysis-plugin, installed by scripts/setup --test) found through its entry point,
run by ``collab analyses run`` with progress, stored, audited, and served to those who may
see the slide; the job queue's claims, cancellation and retries after a crash."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collab.analysis.registry import installed
from collab.store.database import Database
from tests.conftest import (
    add_slides,
    add_user,
    api_token,
    collab,
    connect_db,
    database_for,
    real_slide,
    seed_case,
    sign_in_with_form,
    start_server,
    stop_server,
    write_pyramid_tiff,
)

PLUGIN = "pale-areas"

pytestmark = pytest.mark.skipif(
    PLUGIN not in installed(), reason="the example plug-in is not installed (bash scripts/setup --test)"
)


@pytest.fixture
def slide(data_dir: Path) -> str:
    seed_case(data_dir)
    (slide_id,) = add_slides(data_dir, write_pyramid_tiff(data_dir / "a.tiff", 2048, 1536, levels=3))
    return slide_id


def _audit(data_dir: Path) -> list[tuple[str, str]]:
    with connect_db(data_dir) as db:
        rows = db.execute(
            "SELECT event, detail FROM audit WHERE event LIKE 'analysis %' ORDER BY id"
        ).fetchall()
    return [(event, detail) for event, detail in rows]


def test_the_command_line_runs_a_plug_in_with_progress_and_stores_its_result(
    data_dir: Path, slide: str
) -> None:
    result = collab("analyses", "run", slide, "--name", PLUGIN, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    result_id = int(result.stdout.strip())
    progress = [line for line in result.stderr.splitlines() if line.startswith(f"{PLUGIN}: ")]
    assert progress[0] == f"{PLUGIN}: 0%" and progress[-1] == f"{PLUGIN}: 100%", result.stderr

    with connect_db(data_dir) as db:
        job = db.execute("SELECT state, progress, attempts, result_id FROM analysis_jobs").fetchall()
        stored = db.execute("SELECT analysis, version, source FROM analysis_results").fetchall()
    assert job == [("done", 1.0, 1, result_id)]
    assert stored == [(PLUGIN, "1.0.0", "collab")]
    assert [event for event, _ in _audit(data_dir)] == ["analysis requested", "analysis finished"]
    assert _audit(data_dir)[1][1] == f"{PLUGIN}, job 1; result {result_id}"


def test_mistakes_are_refused_clearly_and_nothing_is_queued(data_dir: Path, slide: str) -> None:
    unknown = collab("analyses", "run", slide, "--name", "magic", data_dir=data_dir)
    assert unknown.returncode == 1
    assert unknown.stderr == f"collab: no analysis is called 'magic' (installed: {', '.join(installed())})\n"
    no_slide = collab("analyses", "run", "0123456789abcdef", data_dir=data_dir)
    assert (no_slide.returncode, no_slide.stderr) == (1, "collab: no slide has the id '0123456789abcdef'\n")
    with connect_db(data_dir) as db:
        assert db.execute("SELECT count(*) FROM analysis_jobs").fetchone()[0] == 0


def test_a_slide_file_gone_fails_the_job_saying_why(data_dir: Path, slide: str) -> None:
    (data_dir / "a.tiff").unlink()
    result = collab("analyses", "run", slide, "--name", PLUGIN, data_dir=data_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert f"collab: {PLUGIN} did not finish: " in result.stderr and "a.tiff" in result.stderr
    with connect_db(data_dir) as db:
        ((state, error),) = db.execute("SELECT state, error FROM analysis_jobs").fetchall()
    assert state == "failed" and "a.tiff" in error
    assert [event for event, _ in _audit(data_dir)] == ["analysis requested", "analysis failed"]


def test_the_queue_gives_each_job_once_cancels_and_retries_a_crashed_job_once(
    data_dir: Path, slide: str
) -> None:
    async def run() -> None:
        async with Database(data_dir / "collab.sqlite3", database_for(data_dir)) as db:
            first = await db.analyses.enqueue(slide, PLUGIN, requested_by=None)
            second = await db.analyses.enqueue(slide, PLUGIN, requested_by=None)
            third = await db.analyses.enqueue(slide, PLUGIN, requested_by=None)
            taken = [await db.analyses.claim(), await db.analyses.claim()]
            assert [job.id for job in taken if job] == [first, second]
            assert await db.analyses.claim(first) is None  # already running
            # A queued job is cancelled at once; a running one when it next reports progress.
            assert await db.analyses.cancel(third) == "cancelled"
            assert await db.analyses.claim() is None
            assert await db.analyses.cancel(second) == "running"
            assert await db.analyses.beat(second, 0.5) is True
            assert await db.analyses.beat(first, 0.5) is False
            # The first job's worker stops beating: it crashed.
            for attempt in (1, 2):
                with connect_db(data_dir) as conn:
                    conn.execute(
                        "UPDATE analysis_jobs SET heartbeat = '2000-01-01T00:00:00+00:00' WHERE id = ?",
                        (first,),
                    )
                requeued, failed = await db.analyses.requeue_stale(older_than_s=30)
                if attempt == 1:
                    assert (requeued, failed) == ([first], [])
                    again = await db.analyses.claim()
                    assert again is not None and (again.id, again.attempts) == (first, 2)
                else:
                    assert (requeued, failed) == ([], [first])
            job = await db.analyses.job(first)
            assert job is not None and (job.state, job.error) == ("failed", "its worker stopped 2 times")

    asyncio.run(run())


def test_a_worker_runs_queued_jobs(data_dir: Path, slide: str) -> None:
    async def enqueue() -> int:
        async with Database(data_dir / "collab.sqlite3", database_for(data_dir)) as db:
            return await db.analyses.enqueue(slide, PLUGIN, requested_by=None)

    job_id = asyncio.run(enqueue())
    result = collab("analyses", "worker", "--once", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert f"job {job_id} ({PLUGIN}, slide {slide}): result 1" in result.stderr
    with connect_db(data_dir) as db:
        assert db.execute("SELECT state FROM analysis_jobs").fetchall() == [("done",)]


def test_results_reach_those_who_may_see_the_slide_with_their_layers(data_dir: Path, slide: str) -> None:
    assert collab("analyses", "run", slide, "--name", PLUGIN, data_dir=data_dir).returncode == 0
    assert collab("orgs", "add", "South Trust", data_dir=data_dir).returncode == 0
    add_user(data_dir, "south.path", "pathologist", "South Trust")
    server = start_server(data_dir)
    try:
        north = {"Authorization": f"Bearer {api_token(data_dir, 'north.path')}"}
        south = {"Authorization": f"Bearer {api_token(data_dir, 'south.path')}"}
        answer = server.client.get(f"/api/slides/{slide}/analyses", headers=north)
        assert answer.status_code == 200
        (found,) = answer.json()
        assert (found["name"], found["version"], found["source"]) == (PLUGIN, "1.0.0", "collab")
        assert found["parameters"] == {"grid": 16, "pale_above": 0.85, "flag_above": 0.9}
        assert "not a diagnosis" in found["notice"]
        assert set(found["scores"]) == {"pale fraction"}
        assert found["regions"][0]["label"] == "palest area"
        (layer,) = found["layers"]
        image = server.client.get(layer["image"], headers=north)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(image.content)) as png:
            assert (png.mode, png.size) == ("RGBA", (layer["cols"], layer["rows"]))
            assert np.asarray(png)[..., 3].max() > 0
        (job,) = server.client.get(f"/api/slides/{slide}/analyses/jobs", headers=north).json()
        assert (job["name"], job["state"], job["result_id"]) == (PLUGIN, "done", found["id"])
        # Someone who may not see the slide learns nothing, not even that it exists.
        assert server.client.get(f"/api/slides/{slide}/analyses", headers=south).status_code == 404
        assert server.client.get(layer["image"], headers=south).status_code == 404
        assert server.client.get(f"/api/slides/{slide}/analyses/jobs", headers=south).status_code == 404
        wrong = layer["image"].replace(f"/analyses/{found['id']}/", "/analyses/999/")
        assert server.client.get(wrong, headers=north).status_code == 404
    finally:
        stop_server(server)


def _png(values: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(values).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_an_outside_tools_result_is_shown_like_ours_with_the_tool_named(data_dir: Path, slide: str) -> None:
    """A test tool posts a score, a flag, a heatmap (8-bit PNG, 256-pixel cells over the
    2048 x 1536 slide: 8 x 6 cells) and GeoJSON regions through the write API."""
    add_user(data_dir, "north.onc", "clinician", "North Trust")
    server = start_server(data_dir)
    try:
        tool = {"Authorization": f"Bearer {api_token(data_dir, 'north.path')}"}
        reader = {"Authorization": f"Bearer {api_token(data_dir, 'north.onc')}"}
        cells = np.zeros((6, 8), dtype=np.uint8)
        cells[1:3, 2:5] = 255
        square = [[512, 256], [1280, 256], [1280, 768], [512, 768], [512, 256]]
        body = {
            "tool": "Test Vendor AI",
            "analysis": "tumour-finder",
            "version": "3.2",
            "parameters": {"threshold": 0.5},
            "scores": {"tumour likelihood": 0.93},
            "flags": [{"name": "urgent review suggested", "reason": "tumour likely in 2 areas"}],
            "heatmaps": [
                {
                    "name": "tumour",
                    "legend": "tumour probability",
                    "level0_cell_px": 256,
                    "image_base64": _png(cells),
                }
            ],
            "regions": {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [square]},
                        "properties": {"label": "tumour", "score": 0.97},
                    }
                ],
            },
        }
        url = f"/api/slides/{slide}/analyses"
        refusals = {
            "a grid that does not cover the slide": (
                {**body, "heatmaps": [{**body["heatmaps"][0], "level0_cell_px": 128}]},
                422,
                "is 16 x 12 cells, not 8 x 6",
            ),
            "not an image": (
                {**body, "heatmaps": [{**body["heatmaps"][0], "image_base64": "aGVsbG8="}]},
                422,
                "not a PNG or TIFF",
            ),
            "a region off the slide": (
                {
                    **body,
                    "regions": {
                        "type": "FeatureCollection",
                        "features": [
                            {
                                "type": "Feature",
                                "geometry": {
                                    "type": "Polygon",
                                    "coordinates": [[[0, 0], [9000, 0], [0, 10], [0, 0]]],
                                },
                                "properties": {"label": "x"},
                            }
                        ],
                    },
                },
                422,
                "within the slide's 2048 x 1536",
            ),
            "nothing at all": ({"tool": "Test Vendor AI", "version": "3.2"}, 422, "at least one score"),
        }
        for why, (sent, status, says) in refusals.items():
            refused = server.client.post(url, json=sent, headers=tool)
            assert (refused.status_code, says in refused.json()["detail"]) == (status, True), (
                why,
                refused.text,
            )
        assert server.client.post(url, json=body, headers=reader).status_code == 403
        assert server.client.get(url, headers=tool).json() == []

        posted = server.client.post(url, json=body, headers=tool)
        assert posted.status_code == 201, posted.text
        (found,) = server.client.get(url, headers=reader).json()
        assert found == posted.json()
        assert (found["name"], found["version"], found["source"]) == (
            "tumour-finder",
            "3.2",
            "Test Vendor AI",
        )
        assert found["scores"] == {"tumour likelihood": 0.93}
        assert found["flags"] == [{"name": "urgent review suggested", "reason": "tumour likely in 2 areas"}]
        assert found["regions"] == [{"label": "tumour", "polygon_level0": square, "score": 0.97}]
        (layer,) = found["layers"]
        assert (layer["rows"], layer["cols"], layer["level0_cell_px"]) == (6, 8, 256)
        image = server.client.get(layer["image"], headers=reader)
        with Image.open(io.BytesIO(image.content)) as png:
            alpha = np.asarray(png)[..., 3]
        # Where the tool said 1 the layer is opaque, where it said 0 transparent.
        assert (alpha[1:3, 2:5] > 200).all() and (alpha[cells == 0] == 0).all()

        # On the worklist: the tool's score beside the priority, the tool named, and the
        # worklist sorted by it (a second case, without scores, comes after).
        assert collab("cases", "add", "S26-0", "--org", "North Trust", data_dir=data_dir).returncode == 0
        listed = server.client.get("/api/worklist?sort=score", headers=reader).json()["cases"]
        assert [c["accession"] for c in listed] == ["S26-1", "S26-0"]
        (score,) = listed[0]["scores"]
        assert {k: score[k] for k in ("name", "value", "analysis", "source", "slide_id")} == {
            "name": "tumour likelihood",
            "value": 0.93,
            "analysis": "tumour-finder",
            "source": "Test Vendor AI",
            "slide_id": slide,
        }
        assert listed[1]["scores"] == []
        # In another colour map of the fixed list, drawn by the server; any other name refused.
        magma = server.client.get(f"{layer['image']}?colours=magma", headers=reader)
        assert magma.status_code == 200 and magma.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(magma.content)) as png:
            drawn = np.asarray(png)
        assert (drawn[1:3, 2:5, 3] > 200).all() and (drawn[..., 3][cells == 0] == 0).all()
        assert magma.content != image.content
        assert server.client.get(f"{layer['image']}?colours=viridis", headers=reader).content == image.content
        for bad in ("rainbow", "", "constructor", "magma%00", "VIRIDIS"):
            refused = server.client.get(f"{layer['image']}?colours={bad}", headers=reader)
            assert refused.status_code == 422, bad
            assert "viridis, magma, greys" in refused.text
    finally:
        stop_server(server)
    assert [e for e, _ in _audit(data_dir)] == ["analysis posted"]
    assert _audit(data_dir)[0][1] == "tumour-finder 3.2 from Test Vendor AI; result 1"


def test_a_flag_is_on_the_worklist_until_a_pathologist_confirms_or_dismisses_it(
    data_dir: Path, slide: str
) -> None:
    """Flags of the newest results show beside the priority, with their reason and the software
    that raised them; the worklist filters and sorts by them; a pathologist of the case confirms
    (raising the priority only if they choose to) or dismisses each, and both are audited."""
    seed_other = collab("cases", "add", "S26-2", "--org", "North Trust", data_dir=data_dir)
    assert seed_other.returncode == 0, seed_other.stderr
    add_user(data_dir, "north.trainee", "trainee", "North Trust")
    add_user(data_dir, "north.onc", "clinician", "North Trust")
    server = start_server(data_dir)
    people = []
    try:
        people = [sign_in_with_form(server, name) for name in ("north.path", "north.trainee", "north.onc")]
        path, trainee, onc = people
        tool = {"Authorization": f"Bearer {api_token(data_dir, 'north.path')}"}
        flags = [
            {"name": "rescan suggested", "reason": "out of focus in 14% of the tissue"},
            {"name": "urgent review suggested", "reason": "tumour likely"},
        ]
        posted = server.client.post(
            f"/api/slides/{slide}/analyses",
            json={"tool": "Test Vendor AI", "analysis": "triage", "version": "1", "flags": flags},
            headers=tool,
        )
        assert posted.status_code == 201, posted.text

        listed = path.get("/api/worklist").json()["cases"]
        by_accession = {c["accession"]: c for c in listed}
        assert [f["name"] for f in by_accession["S26-1"]["flags"]] == [
            "rescan suggested",
            "urgent review suggested",
        ]
        assert by_accession["S26-1"]["flags"][0]["source"] == "Test Vendor AI"
        assert by_accession["S26-2"]["flags"] == []
        assert [c["accession"] for c in path.get("/api/worklist?flags=open").json()["cases"]] == ["S26-1"]
        assert path.get("/api/worklist?sort=flags").json()["cases"][0]["accession"] == "S26-1"
        page = path.get("/").text
        assert "out of focus in 14% of the tissue" in page and "triage 1, from Test Vendor AI" in page
        assert "decision support" in page
        rescan, urgent = (f["id"] for f in by_accession["S26-1"]["flags"])
        assert "Confirm</button>" in page and "Confirm</button>" not in onc.get("/").text

        # Only a pathologist working on the case reviews a flag.
        refused = trainee.client.post(
            f"/analysis-flags/{rescan}", data={"csrf": trainee.csrf, "review": "dismissed"}
        )
        assert refused.status_code == 403
        assert (
            path.client.post(f"/analysis-flags/{rescan}", data={"review": "dismissed"}).status_code == 403
        )  # no CSRF
        dismissed = path.client.post(
            f"/analysis-flags/{rescan}", data={"csrf": path.csrf, "review": "dismissed"}
        )
        assert dismissed.status_code == 303
        again = path.client.post(f"/analysis-flags/{rescan}", data={"csrf": path.csrf, "review": "confirmed"})
        assert again.status_code == 404
        confirmed = path.client.post(
            f"/analysis-flags/{urgent}", data={"csrf": path.csrf, "review": "confirmed", "urgent": "on"}
        )
        assert confirmed.status_code == 303, confirmed.text[-600:]
        after = {c["accession"]: c for c in path.get("/api/worklist").json()["cases"]}
        assert after["S26-1"]["flags"] == [] and after["S26-1"]["priority"] == "urgent"
        assert path.get("/api/worklist?flags=open").json()["cases"] == []
    finally:
        for person in people:
            person.client.close()
        stop_server(server)
    events = _audit(data_dir)
    assert [e for e, _ in events] == ["analysis posted", "analysis flag dismissed", "analysis flag confirmed"]
    assert events[1][1] == "rescan suggested (triage 1, Test Vendor AI): out of focus in 14% of the tissue"
    with connect_db(data_dir) as db:
        changed = db.execute("SELECT detail FROM audit WHERE event = 'case changed'").fetchall()
    assert changed == [("priority routine -> urgent, confirming the flag 'urgent review suggested'",)]


def test_the_built_in_analyses_run_on_a_real_slide_from_the_command_line(data_dir: Path) -> None:
    """Slide QC and the H&E stain analysis, registered like any plug-in, on a real H&E slide:
    no rescan suggested, the stain analysis's hotspots as regions, a layer per heatmap."""
    seed_case(data_dir)
    (slide_id,) = add_slides(data_dir, real_slide("CMU-1-Small-Region.svs"))
    result = collab(
        "analyses", "run", slide_id, "--name", "slide-qc", "--name", "he-stain", data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 2
    server = start_server(data_dir)
    try:
        north = {"Authorization": f"Bearer {api_token(data_dir, 'north.path')}"}
        found = {
            r["name"]: r for r in server.client.get(f"/api/slides/{slide_id}/analyses", headers=north).json()
        }
    finally:
        stop_server(server)
    qc, stain = found["slide-qc"], found["he-stain"]
    assert qc["source"] == stain["source"] == "collab"
    assert qc["flags"] == [] and 0.2 < qc["scores"]["tissue_fraction"] < 0.8
    assert [layer["name"] for layer in qc["layers"]] == ["tissue", "out of focus", "pen", "folds", "bubbles"]
    assert len(stain["regions"]) == 3 and all(r["label"].startswith("hotspot") for r in stain["regions"])
