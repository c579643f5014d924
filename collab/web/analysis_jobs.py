"""Analyses on demand from the case page: which can run here (``GET /api/analyses``), a run
requested (``POST /api/slides/{id}/analyses/jobs``) and cancelled (``POST
/api/analysis-jobs/{id}/cancel``). The server only queues: a worker process runs the job
(collab.analysis.workers), and the page follows its progress on ``GET …/analyses/jobs``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.analysis.registry import installed
from collab.store.database import Database
from collab.web.analyses import JOB, allowed, job_json
from collab.web.api import describe, read_json, session_csrf_ok
from collab.web.auth import client_address, current_user
from collab.web.errors import problem

CONTRIBUTORS_ONLY = "Only those who contribute to the case run analyses of its slides."


async def catalogue(request: Request) -> Response:
    """``GET /api/analyses``"""
    settings = request.app.state.settings
    return JSONResponse(
        {
            "analyses": installed(),
            "on_registration": list(settings.analyse_on_registration),
            "workers": settings.analysis_workers,
        }
    )


async def request_run(request: Request) -> Response:
    """``POST /api/slides/{slide_id}/analyses/jobs`` with ``{"name": …}``: queued, or the run of
    that analysis already queued or running (a second click queues nothing)."""
    found = await allowed(request)
    if isinstance(found, Response):
        return found
    record, may = found
    if not may.contribute:
        return problem(403, CONTRIBUTORS_ONLY)
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    name, known = body.get("name"), installed()
    if not isinstance(name, str) or name not in known:
        return problem(422, f"Name one of the analyses installed here: {', '.join(known) or 'none'}.")
    db: Database = request.app.state.db
    for earlier in await db.analyses.jobs_of_slide(record.id):
        if earlier.analysis == name and earlier.state in ("queued", "running"):
            return JSONResponse(job_json(earlier))
    user = current_user(request)
    job_id = await db.analyses.enqueue(record.id, name, requested_by=user.id)
    await db.audit.record(
        "analysis requested",
        user=user,
        client=client_address(request),
        case_id=record.case_id,
        slide_id=record.id,
        detail=f"{name}, job {job_id}",
    )
    job = await db.analyses.job(job_id)
    assert job is not None
    return JSONResponse(job_json(job), status_code=202)


async def cancel(request: Request) -> Response:
    """``POST /api/analysis-jobs/{job_id}/cancel``: a queued job at once, a running one at its
    next progress report (within a second)."""
    raw = request.path_params["job_id"]
    db: Database = request.app.state.db
    job = await db.analyses.job(int(raw)) if raw.isdigit() and len(raw) < 12 else None
    if job is None:
        return problem(404, "No such analysis job.")
    found = await allowed(request, job.slide_id)
    if isinstance(found, Response):
        return problem(404, "No such analysis job.")
    record, may = found
    if not may.contribute:
        return problem(403, "Only those who contribute to the case cancel its analyses.")
    if not session_csrf_ok(request):
        return problem(403, "Missing or wrong X-CSRF-Token header for this session.")
    if job.state not in ("queued", "running"):
        return problem(409, f"This analysis has already ended ({job.state}).")
    await db.analyses.cancel(job.id)
    await db.audit.record(
        "analysis cancelled",
        user=current_user(request),
        client=client_address(request),
        case_id=record.case_id,
        slide_id=record.id,
        detail=f"{job.analysis}, job {job.id}, asked for",
    )
    ended = await db.analyses.job(job.id)
    assert ended is not None
    return JSONResponse(job_json(ended))


describe(
    "/api/analyses",
    "get",
    "The analyses installed here, those queued for every new slide, and how many worker"
    " processes this server runs",
    response={
        "type": "object",
        "properties": {
            "analyses": {"type": "array", "items": {"type": "string"}},
            "on_registration": {"type": "array", "items": {"type": "string"}},
            "workers": {"type": "integer"},
        },
    },
    tag="slides",
)
describe(
    "/api/slides/{slide_id}/analyses/jobs",
    "post",
    "Run an analysis of a slide (contributors): queued for a worker process; the run already"
    " queued or running is answered instead of a second one",
    body={"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
    response=JOB,
    status=202,
    tag="slides",
)
describe(
    "/api/analysis-jobs/{job_id}/cancel",
    "post",
    "Cancel an analysis job (contributors): a queued one at once, a running one within a second",
    response=JOB,
    tag="slides",
)

routes = [
    Route("/api/analyses", catalogue),
    Route("/api/slides/{slide_id}/analyses/jobs", request_run, methods=["POST"]),
    Route("/api/analysis-jobs/{job_id}/cancel", cancel, methods=["POST"]),
]
