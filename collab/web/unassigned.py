"""Unassigned slides: uploaded without a case, or dropped by a scanner into the import folder,
waiting for a pathologist to attach them to a case. Labels carry patient identifiers, so the
list, the label images and attaching are for the owning trust's pathologists and admins only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab import intake
from collab.analysis.jobs import queue_for_new_slide
from collab.config import Settings
from collab.domain import User
from collab.slides import SlideError
from collab.store import Database
from collab.store.uploads import UnassignedSlide
from collab.web.api import describe, read_json
from collab.web.auth import checked_form, client_address, current_user
from collab.web.errors import error, problem
from collab.web.render import render
from collab.web.uploads import UPLOADERS, writable_case


class Refused(Exception):
    """An attach that cannot be done; (status, one-line reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def import_org_id(db: Database, settings: Settings) -> int | None:
    """The organisation whose slides the import folder holds: the configured one, else the only one."""
    if settings.import_org:
        org = await db.catalog.org_by_name(settings.import_org)
        return org.id if org else None
    rows = await db.all("SELECT id FROM organisations LIMIT 2")
    return rows[0]["id"] if len(rows) == 1 else None


async def scan_import_folder(request: Request) -> None:
    """Take in files the scanner has dropped since the last look (each file once)."""
    state = request.app.state
    if not hasattr(state, "import_lock"):
        state.import_lock = asyncio.Lock()
    db: Database = state.db
    settings: Settings = state.settings
    async with state.import_lock:
        org_id = await import_org_id(db, settings)
        if org_id is None:
            return
        found = await asyncio.to_thread(
            intake.scan_import_dir, settings.import_path, await db.uploads.known_files()
        )
        for item in found:
            try:
                seen = await asyncio.to_thread(intake.inspect, item.path)
            except SlideError as exc:
                # Remembered with its reason, so the file is not opened again on every visit.
                await db.uploads.add_unassigned(
                    org_id, str(item.path), source="import", file_size=item.file_size,
                    mtime_ns=item.mtime_ns, filename=item.path.name, refusal=str(exc)[:300],
                )  # fmt: skip
                continue
            record = await db.uploads.add_unassigned(
                org_id, str(item.path), source="import", file_size=item.file_size, mtime_ns=item.mtime_ns,
                filename=item.path.name, width=seen.width, height=seen.height, vendor=seen.vendor,
                barcode=seen.barcode, has_label=seen.has_label,
            )  # fmt: skip
            if record is not None:
                await db.audit.record("slide imported", slide_id=record.id, detail=item.path.name)


def _may_see(user: User, slide: UnassignedSlide | None) -> bool:
    return slide is not None and user.role in UPLOADERS and user.org_id == slide.org_id


def summary(slide: UnassignedSlide) -> dict[str, Any]:
    return {
        "id": slide.id,
        "filename": slide.filename,
        "source": slide.source,
        "width": slide.width,
        "height": slide.height,
        "vendor": slide.vendor,
        "barcode": slide.barcode,
        "label": f"/slides/unassigned/{slide.id}/label.jpeg" if slide.has_label else None,
        "refusal": slide.refusal,
        "added": slide.added,
    }


async def _listing(request: Request) -> list[UnassignedSlide]:
    user = current_user(request)
    await scan_import_folder(request)
    return await request.app.state.db.uploads.unassigned_of_org(user.org_id)


async def attach(request: Request, unassigned_id: str, case_id: str) -> str:
    """Attach an unassigned slide to a case of its trust; returns the case's new slide id."""
    db: Database = request.app.state.db
    user = current_user(request)
    slide = await db.uploads.unassigned(unassigned_id)
    if slide is None or not _may_see(user, slide) or slide.attached_slide:
        raise Refused(404, "No such unassigned slide.")
    if slide.refusal or slide.width is None or slide.height is None:
        raise Refused(409, f"This file is not a slide we can read: {slide.refusal}")
    case = await db.catalog.case(case_id) if case_id else None
    if case is None or case.org_id != slide.org_id or not await writable_case(request, case_id):
        raise Refused(404, "Choose one of your trust's cases that you may add slides to.")
    record, _ = await db.catalog.add_slide(
        case_id, slide.path, width=slide.width, height=slide.height, vendor=slide.vendor, stain=None
    )
    if not await db.uploads.mark_attached(unassigned_id, record.id):
        raise Refused(409, "The slide was attached by someone else a moment ago.")
    await queue_for_new_slide(
        db, record.id, case_id, request.app.state.settings.analyse_on_registration,
        user=user, client=client_address(request),
    )  # fmt: skip
    await db.audit.record(
        "slide attached",
        user=user,
        client=client_address(request),
        case_id=case_id,
        slide_id=record.id,
        detail=f"{slide.filename} (unassigned {slide.id})",
    )
    return record.id


# -- pages --------------------------------------------------------------------


async def unassigned_page(request: Request) -> Response:
    """``GET /slides/unassigned``: slides waiting for a case, with their labels and barcodes."""
    user = current_user(request)
    if user.role not in UPLOADERS:
        return error(403, "Only pathologists and administrators see unassigned slides.")
    db: Database = request.app.state.db
    cases = [
        c
        for c in await db.catalog.visible_cases(user.org_id, user.id, own_org=True)
        if c.org_id == user.org_id and await writable_case(request, c.id)
    ]
    slides = [summary(s) for s in await _listing(request)]
    return render(
        request,
        "slides_unassigned.html",
        slides=slides,
        cases=cases,
        import_dir=str(request.app.state.settings.import_path),
        message=request.query_params.get("error", "")[:300],
    )


async def attach_form(request: Request) -> Response:
    """``POST /slides/unassigned/{slide_id}/attach`` (form: case_id): then to the case."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    case_id = str(form.get("case_id", ""))
    try:
        slide_id = await attach(request, request.path_params["slide_id"], case_id)
    except Refused as refused:
        return error(refused.status, refused.reason)
    return RedirectResponse(f"/cases/{case_id}?slide={slide_id}", status_code=303)


async def label(request: Request) -> Response:
    """``GET /slides/unassigned/{slide_id}/label.jpeg``: the label photographed with the slide."""
    user = current_user(request)
    slide = await request.app.state.db.uploads.unassigned(request.path_params["slide_id"])
    if slide is None or not _may_see(user, slide) or not slide.has_label:
        return error(404, "No such label image.")
    try:
        body = await asyncio.to_thread(intake.label_jpeg, Path(slide.path))
    except SlideError as exc:
        return error(503, f"The label cannot be read: {exc}")
    if body is None:
        return error(404, "No such label image.")
    return Response(body, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


# -- JSON twins ---------------------------------------------------------------


async def unassigned_json(request: Request) -> Response:
    """``GET /api/slides/unassigned``"""
    if current_user(request).role not in UPLOADERS:
        return problem(403, "Only pathologists and administrators see unassigned slides.")
    return JSONResponse({"slides": [summary(s) for s in await _listing(request)]})


async def attach_json(request: Request) -> Response:
    """``POST /api/slides/{slide_id}/attach`` with ``{"case_id": ...}``"""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    case_id = body.get("case_id")
    if not isinstance(case_id, str) or not case_id:
        return problem(422, "Send the case to attach the slide to as case_id.")
    try:
        slide_id = await attach(request, request.path_params["slide_id"], case_id)
    except Refused as refused:
        return problem(refused.status, refused.reason)
    return JSONResponse(
        {"slide_id": slide_id, "case_id": case_id, "url": f"/cases/{case_id}?slide={slide_id}"}
    )


UNASSIGNED = {
    "type": "object",
    "required": ["id", "filename", "source"],
    "properties": {
        "id": {"type": "string"},
        "filename": {"type": "string"},
        "source": {"type": "string", "enum": ["upload", "import"]},
        "width": {"type": ["integer", "null"]},
        "height": {"type": ["integer", "null"]},
        "vendor": {"type": ["string", "null"]},
        "barcode": {"type": ["string", "null"]},
        "label": {"type": ["string", "null"], "description": "URL of the label image, if the file has one"},
        "refusal": {"type": ["string", "null"], "description": "why an imported file cannot be used"},
        "added": {"type": "string"},
    },
}
describe(
    "/api/slides/unassigned",
    "get",
    "Your trust's slides that belong to no case yet (uploads and the scanner's import folder)",
    response={"type": "object", "properties": {"slides": {"type": "array", "items": UNASSIGNED}}},
    tag="slides",
)
describe(
    "/api/slides/{slide_id}/attach",
    "post",
    "Attach an unassigned slide to a case of your trust; answers the case's new slide id",
    body={"type": "object", "required": ["case_id"], "properties": {"case_id": {"type": "string"}}},
    response={
        "type": "object",
        "properties": {
            "slide_id": {"type": "string"},
            "case_id": {"type": "string"},
            "url": {"type": "string"},
        },
    },
    tag="slides",
)

routes = [
    Route("/slides/unassigned", unassigned_page),
    Route("/slides/unassigned/{slide_id}/attach", attach_form, methods=["POST"]),
    Route("/slides/unassigned/{slide_id}/label.jpeg", label),
    Route("/api/slides/unassigned", unassigned_json),
    Route("/api/slides/{slide_id}/attach", attach_json, methods=["POST"]),
]
