"""Analysis results of a slide, for whoever may see the slide: ``GET /api/slides/{id}/analyses``
(scores, flags, regions, and each heatmap as a layer image) and the layer images themselves.

Every result is decision support, labelled so: it names the analysis, its version and
parameters, and where it came from (``source``: run here, or the outside tool that posted it).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.analysis.colours import COLOUR_MAPS, DEFAULT, layer_png
from collab.analysis.external import ExternalRefused, external_result
from collab.analysis.result import Heatmap
from collab.domain import Access, SlideRecord
from collab.store.analyses import Job, StoredResult
from collab.store.database import Database
from collab.web.access import AccessControl
from collab.web.api import describe, read_json
from collab.web.auth import client_address, current_user
from collab.web.errors import error, problem

SLIDE_ID = re.compile(r"[0-9a-f]{16}")
# A posted result: its heatmaps travel as base64 images of at most 2048 x 2048 cells.
MAX_POSTED_BYTES = 16 * 1024 * 1024
# How long an ended job stays in the slide's list of jobs.
ENDED_SHOWN_S = 600
NOTICE = "Decision support from software, not a diagnosis: a person decides."


async def allowed(request: Request, slide_id: str | None = None) -> tuple[SlideRecord, Access] | Response:
    """The slide (of the path, unless named) and the person's access to its case, if they may
    see it; else the answer to send."""
    slide_id = slide_id or request.path_params["slide_id"]
    access: AccessControl = request.app.state.access
    found = await access.slide(request, slide_id) if SLIDE_ID.fullmatch(slide_id) else None
    if found is None:
        return error(404, "No such slide.", request)
    record, _, may = found
    return record, may


def _layers(slide_id: str, stored: StoredResult) -> list[dict[str, Any]]:
    return [
        {
            "name": heatmap["name"],
            "legend": heatmap["legend"],
            "level0_cell_px": heatmap["level0_cell_px"],
            "rows": heatmap["rows"],
            "cols": heatmap["cols"],
            "image": f"/slides/{slide_id}/analyses/{stored.id}/layers/{index}.png",
        }
        for index, heatmap in enumerate(stored.result["heatmaps"])
    ]


def _described(slide_id: str, stored: StoredResult) -> dict[str, Any]:
    result = stored.result
    return {
        "id": stored.id,
        "name": stored.analysis,
        "version": stored.version,
        "source": stored.source,
        "made": stored.made,
        "parameters": result["parameters"],
        "scores": result["scores"],
        "flags": result["flags"],
        "layers": _layers(slide_id, stored),
        "regions": result["regions"],
        "notice": NOTICE,
    }


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.analysis,
        "state": job.state,
        "progress": round(job.progress, 3),
        "requested": job.requested,
        "error": job.error,
        "result_id": job.result_id,
    }


async def analyses(request: Request) -> Response:
    """``GET /api/slides/{slide_id}/analyses``"""
    checked = await allowed(request)
    if isinstance(checked, Response):
        return checked
    slide_id = checked[0].id
    db: Database = request.app.state.db
    results = await db.analyses.results_of_slide(slide_id)
    return JSONResponse([_described(slide_id, r) for r in results])


async def post(request: Request) -> Response:
    """``POST /api/slides/{slide_id}/analyses``: an outside tool's result (collab.analysis.external)."""
    checked = await allowed(request)
    if isinstance(checked, Response):
        return checked
    record, may = checked
    slide_id = record.id
    if not may.contribute:
        return problem(403, "Only those who contribute to the case post analysis results to its slides.")
    body = await read_json(request, MAX_POSTED_BYTES)
    if isinstance(body, Response):
        return body
    try:
        tool, result = await asyncio.to_thread(external_result, body, record.width, record.height)
    except ExternalRefused as refused:
        return problem(422, f"{refused}.")
    db: Database = request.app.state.db
    result_id = await db.analyses.add_result(slide_id, result.to_json(), source=tool)
    await db.audit.record(
        "analysis posted",
        user=current_user(request),
        client=client_address(request),
        case_id=record.case_id,
        slide_id=slide_id,
        detail=f"{result.analysis} {result.version} from {tool}; result {result_id}",
    )
    stored = await db.analyses.result(result_id)
    assert stored is not None
    return JSONResponse(_described(slide_id, stored), status_code=201)


async def jobs(request: Request) -> Response:
    """``GET /api/slides/{slide_id}/analyses/jobs``: those queued or running, and those that
    ended in the last ten minutes (so a page can say how a run it followed ended), oldest first."""
    checked = await allowed(request)
    if isinstance(checked, Response):
        return checked
    slide_id = checked[0].id
    db: Database = request.app.state.db
    found = await db.analyses.jobs_of_slide(slide_id)
    since = (datetime.now(UTC) - timedelta(seconds=ENDED_SHOWN_S)).isoformat(timespec="seconds")
    shown = [j for j in found if j.state in ("queued", "running") or (j.finished or "") >= since]
    return JSONResponse([job_json(j) for j in shown])


async def layer(request: Request) -> Response:
    """``GET /slides/{slide_id}/analyses/{result_id}/layers/{index}.png[?colours=NAME]``"""
    checked = await allowed(request)
    if isinstance(checked, Response):
        return checked
    slide_id = checked[0].id
    raw_id, raw_index = request.path_params["result_id"], request.path_params["index"]
    db: Database = request.app.state.db
    stored = await db.analyses.result(int(raw_id)) if raw_id.isdigit() and len(raw_id) < 12 else None
    if stored is None or stored.slide_id != slide_id:
        return error(404, "No such analysis result.", request)
    heatmaps = stored.result["heatmaps"]
    if not raw_index.isdigit() or int(raw_index) >= len(heatmaps):
        return error(404, "No such layer.", request)
    # Only a name from the fixed list reaches the drawing: anything else is refused, not guessed.
    colours = request.query_params.get("colours", DEFAULT)
    if colours not in COLOUR_MAPS:
        return error(422, f"No such colour map; choose one of: {', '.join(COLOUR_MAPS)}.", request)
    heatmap = Heatmap.from_json(heatmaps[int(raw_index)])
    png = await asyncio.to_thread(layer_png, heatmap.values, colours)
    return Response(
        png, media_type="image/png", headers={"Cache-Control": "private, max-age=31536000, immutable"}
    )


RESULT = {
    "type": "object",
    "required": ["id", "name", "version", "source", "scores", "flags", "layers", "regions"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "version": {"type": "string"},
        "source": {"type": "string"},
        "made": {"type": "string"},
        "parameters": {"type": "object"},
        "scores": {"type": "object"},
        "flags": {"type": "array"},
        "layers": {"type": "array"},
        "regions": {"type": "array"},
        "notice": {"type": "string"},
    },
}
JOB = {
    "type": "object",
    "required": ["id", "name", "state", "progress"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "state": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
        "progress": {"type": "number"},
        "requested": {"type": "string"},
        "error": {"type": ["string", "null"]},
        "result_id": {"type": ["integer", "null"]},
    },
}
describe(
    "/api/slides/{slide_id}/analyses",
    "get",
    "A slide's analysis results (decision support): the newest of each analysis and source",
    response={"type": "array", "items": RESULT},
    tag="slides",
)
describe(
    "/api/slides/{slide_id}/analyses",
    "post",
    "Post an outside tool's result for a slide: scores, flags, heatmaps (PNG or TIFF, one pixel"
    " per cell) and regions (GeoJSON); shown like the results of analyses run here, the tool named",
    body={
        "type": "object",
        "required": ["tool", "version"],
        "properties": {
            "tool": {"type": "string"},
            "analysis": {"type": "string"},
            "version": {"type": "string"},
            "parameters": {"type": "object"},
            "scores": {"type": "object"},
            "flags": {"type": "array"},
            "heatmaps": {"type": "array"},
            "regions": {"type": "object"},
        },
    },
    response=RESULT,
    status=201,
    tag="slides",
)
describe(
    "/api/slides/{slide_id}/analyses/jobs",
    "get",
    "A slide's analysis jobs queued or running, with their progress (0..1), and those ended in the"
    " last ten minutes (done, failed with the reason, or cancelled)",
    response={"type": "array", "items": JOB},
    tag="slides",
)

routes = [
    Route("/api/slides/{slide_id}/analyses", analyses),
    Route("/api/slides/{slide_id}/analyses", post, methods=["POST"]),
    Route("/api/slides/{slide_id}/analyses/jobs", jobs),
    Route("/slides/{slide_id}/analyses/{result_id}/layers/{index}.png", layer),
]
