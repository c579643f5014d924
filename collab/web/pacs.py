"""Adding slides to a case from a PACS: search by accession number or patient ID, look at each
whole-slide series' overview, attach it. Only the reference (PACS address, study and series
UIDs) is stored; tiles are then read frame by frame (collab.slides.dicomweb).

The results name patients, so searching is for those who may add slides to the case *and* see
its patient details: pathologists, administrators and MDT coordinators.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.analysis.jobs import queue_for_new_slide
from collab.config import Settings
from collab.domain import Access, Case, User
from collab.integrations import PacsEndpoint
from collab.slides import SlideError, check_slide
from collab.slides.cache import SizedLRU
from collab.slides.dicomweb import DicomWebRef
from collab.slides.pacs import PacsSeries, search_series, thumbnail_jpeg
from collab.store import Database
from collab.web.api import describe, read_json
from collab.web.auth import checked_form, client_address, current_user
from collab.web.errors import error, problem
from collab.web.render import render

COORDINATION = "nursing/MDT coordination"
THUMBNAIL_CACHE_BYTES = 16 << 20


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_coordinator(user: User) -> bool:
    return user.role == "clinician" and user.specialty == COORDINATION


def may_search(user: User, case: Case, access: Access) -> bool:
    """Who finds slides for a case in the PACS: the pathologists and administrators of the
    trust that owns the case (who may add slides to it), and its MDT coordinators. A share of
    one case never opens the owner's PACS to another trust: a search reaches every patient."""
    if not access.identified or case.org_id != user.org_id:
        return False
    if user.role in ("pathologist", "admin"):
        return access.contribute
    return is_coordinator(user)


async def pacs_for(request: Request, user: User) -> tuple[PacsEndpoint, ...]:
    """The configured PACS the user's trust may search."""
    pacs = request.app.state.settings.integrations.pacs
    if all(p.org is None for p in pacs):
        return tuple(pacs)
    org = await request.app.state.db.catalog.org(user.org_id)
    return tuple(p for p in pacs if p.org is None or (org is not None and p.org == org.name))


async def _case(request: Request) -> tuple[str, Settings]:
    """The case the caller may add PACS slides to, and the settings with only the PACS their
    trust may search; Refused otherwise."""
    settings: Settings = request.app.state.settings
    case_id = request.path_params["case_id"]
    found = await request.app.state.access.case(request, case_id)
    if found is None:
        raise Refused(404, "No such case.")
    case, access = found
    user = current_user(request)
    mine = await pacs_for(request, user)
    if not mine:
        raise Refused(404, "No PACS is configured for your trust on this server (see docs/integration.md).")
    if not may_search(user, case, access):
        raise Refused(
            403,
            "Only the pathologists and MDT coordinators of the trust that owns this case search its PACS.",
        )
    integrations = replace(settings.integrations, pacs=mine)
    return case_id, replace(settings, integrations=integrations)


def _endpoint(settings: Settings, name: str) -> PacsEndpoint:
    endpoint = settings.integrations.pacs_named(name) if name else settings.integrations.pacs[0]
    if endpoint is None:
        raise Refused(404, f"No PACS is called {name!r} here.")
    return endpoint


async def _search(settings: Settings, name: str, query: str) -> tuple[PacsEndpoint, list[PacsSeries]]:
    endpoint = _endpoint(settings, name)
    try:
        return endpoint, await asyncio.to_thread(search_series, endpoint, query)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None
    except SlideError as exc:
        raise Refused(503, f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


async def attach(
    request: Request, case_id: str, endpoint: PacsEndpoint, study: str, series: str, stain: str
) -> str:
    """Register the series with the case (its reference only); the new slide's id."""
    try:
        ref = DicomWebRef(endpoint.url, study, series, endpoint)
        width, height, vendor = await asyncio.to_thread(check_slide, ref)
    except SlideError as exc:
        raise Refused(422 if "UID" in str(exc) else 503, f"This series cannot be shown: {exc}") from None
    db: Database = request.app.state.db
    record, new = await db.catalog.add_slide(
        case_id, ref.text(), width=width, height=height, vendor=vendor, stain=stain.strip()[:40] or None
    )
    if new:
        await db.audit.record(
            "slide attached",
            user=current_user(request),
            client=client_address(request),
            case_id=case_id,
            slide_id=record.id,
            detail=f"from the PACS {endpoint.name}: study {study}, series {series}",
        )
        await queue_for_new_slide(
            db, record.id, case_id, request.app.state.settings.analyse_on_registration,
            user=current_user(request), client=client_address(request),
        )  # fmt: skip
    return record.id


async def _attached(request: Request, case_id: str) -> set[tuple[str, str]]:
    """(study, series) of the case's slides that are already in a PACS."""
    from collab.slides.dicomweb import parse_source

    found = set()
    for slide in await request.app.state.db.catalog.slides_of_case(case_id):
        source = parse_source(slide.path)
        if isinstance(source, DicomWebRef):
            found.add((source.study, source.series))
    return found


# -- pages --------------------------------------------------------------------


async def search_page(request: Request) -> Response:
    """``GET /cases/{case_id}/pacs?pacs=NAME&q=ACCESSION-OR-PATIENT-ID``"""
    try:
        case_id, settings = await _case(request)
        name = request.query_params.get("pacs", "")
        query = request.query_params.get("q", "").strip()
        endpoint, message = _endpoint(settings, name), ""
        hits: list[PacsSeries] = []
        if query:
            try:
                endpoint, hits = await _search(settings, endpoint.name, query)
            except Refused as refused:
                if refused.status == 404:
                    raise
                message = refused.reason
    except Refused as refused:
        return error(refused.status, refused.reason)
    case, _ = await request.app.state.access.case(request, case_id)
    attached = await _attached(request, case_id)
    return render(
        request,
        "case_pacs.html",
        case=case,
        endpoints=settings.integrations.pacs,
        endpoint=endpoint,
        query=query,
        hits=[{**asdict(h), "attached": (h.study, h.series) in attached} for h in hits],
        message=message or request.query_params.get("error", "")[:300],
    )


async def thumbnail(request: Request) -> Response:
    """``GET /cases/{case_id}/pacs/thumbnail.jpeg?pacs=&study=&series=``: a series' overview."""
    try:
        _, settings = await _case(request)
        endpoint = _endpoint(settings, request.query_params.get("pacs", ""))
        study, series = request.query_params.get("study", ""), request.query_params.get("series", "")
        DicomWebRef(endpoint.url, study, series)  # refuses what is not a UID
    except Refused as refused:
        return error(refused.status, refused.reason)
    except SlideError as exc:
        return error(400, str(exc))
    state = request.app.state
    if not hasattr(state, "pacs_thumbnails"):
        state.pacs_thumbnails = SizedLRU(THUMBNAIL_CACHE_BYTES)
    key = (endpoint.url, study, series)
    body = state.pacs_thumbnails.get(key)
    if body is None:
        try:
            body = await asyncio.to_thread(thumbnail_jpeg, endpoint, study, series)
        except SlideError as exc:
            return error(503, f"No overview: {exc}")
        state.pacs_thumbnails.put(key, body, len(body))
    return Response(body, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})


async def attach_form(request: Request) -> Response:
    """``POST /cases/{case_id}/pacs/attach`` (form: pacs, study, series, stain): then to the slide."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    try:
        case_id, settings = await _case(request)
        endpoint = _endpoint(settings, str(form.get("pacs", "")))
        slide_id = await attach(
            request, case_id, endpoint, str(form.get("study", "")), str(form.get("series", "")),
            str(form.get("stain", "")),
        )  # fmt: skip
    except Refused as refused:
        return error(refused.status, refused.reason)
    return RedirectResponse(f"/cases/{case_id}?slide={slide_id}", status_code=303)


# -- JSON twins ---------------------------------------------------------------


async def search_json(request: Request) -> Response:
    """``GET /api/cases/{case_id}/pacs/search?pacs=NAME&q=...``"""
    try:
        case_id, settings = await _case(request)
        query = request.query_params.get("q", "")
        endpoint, hits = await _search(settings, request.query_params.get("pacs", ""), query)
    except Refused as refused:
        return problem(refused.status, refused.reason)
    attached = await _attached(request, case_id)
    series: list[dict[str, Any]] = [{**asdict(h), "attached": (h.study, h.series) in attached} for h in hits]
    return JSONResponse({"pacs": endpoint.name, "series": series})


_SERIES = {
    "type": "object",
    "required": ["study", "series", "accession", "patient_id", "patient_name", "attached"],
    "properties": {
        "study": {"type": "string"},
        "series": {"type": "string"},
        "accession": {"type": "string"},
        "patient_id": {"type": "string"},
        "patient_name": {"type": "string"},
        "study_date": {"type": "string"},
        "description": {"type": "string"},
        "instances": {"type": ["integer", "null"]},
        "attached": {"type": "boolean"},
    },
}
describe(
    "/api/cases/{case_id}/pacs/search",
    "get",
    "Whole-slide series in a configured PACS for an accession number or patient ID (QIDO-RS)",
    query={
        "q": {"type": "string", "description": "an accession number or patient ID, exactly"},
        "pacs": {"type": "string", "description": "the PACS's name (default: the first)"},
    },
    response={
        "type": "object",
        "required": ["pacs", "series"],
        "properties": {"pacs": {"type": "string"}, "series": {"type": "array", "items": _SERIES}},
    },
    tag="cases",
)


async def attach_json(request: Request) -> Response:
    """``POST /api/cases/{case_id}/pacs/attach`` with ``{"pacs", "study", "series", "stain"}``"""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    try:
        case_id, settings = await _case(request)
        endpoint = _endpoint(settings, str(body.get("pacs") or ""))
        slide_id = await attach(
            request, case_id, endpoint, str(body.get("study") or ""), str(body.get("series") or ""),
            str(body.get("stain") or ""),
        )  # fmt: skip
    except Refused as refused:
        return problem(refused.status, refused.reason)
    return JSONResponse({"slide_id": slide_id, "case_id": case_id}, status_code=201)


describe(
    "/api/cases/{case_id}/pacs/attach",
    "post",
    "Attach a PACS series to the case by its reference; only the UIDs are stored",
    body={
        "type": "object",
        "required": ["study", "series"],
        "properties": {
            "pacs": {"type": "string"},
            "study": {"type": "string"},
            "series": {"type": "string"},
            "stain": {"type": "string", "maxLength": 40},
        },
    },
    response={
        "type": "object",
        "required": ["slide_id", "case_id"],
        "properties": {"slide_id": {"type": "string"}, "case_id": {"type": "string"}},
    },
    status=201,
    tag="cases",
)

routes = [
    Route("/cases/{case_id}/pacs", search_page),
    Route("/cases/{case_id}/pacs/thumbnail.jpeg", thumbnail),
    Route("/cases/{case_id}/pacs/attach", attach_form, methods=["POST"]),
    Route("/api/cases/{case_id}/pacs/search", search_json),
    Route("/api/cases/{case_id}/pacs/attach", attach_json, methods=["POST"]),
]
