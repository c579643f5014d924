"""Slide uploads from the browser: the ``/slides/new`` page and a small tus 1.0 server under
``/api/uploads`` (creation, HEAD, PATCH, termination; https://tus.io/protocols/resumable-upload).

Bytes go straight to ``data_dir/uploads/<id>.part`` as they arrive, so a dropped connection
loses nothing written: the file's size is the upload's offset. A finished upload is checked
exactly as ``collab slides add`` checks a slide, moved into ``data_dir/slides``, and registered
with its case, or left unassigned for the uploader's organisation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab import intake
from collab.analysis.jobs import queue_for_new_slide
from collab.config import Settings
from collab.domain import User
from collab.slides import SlideError
from collab.store import Database
from collab.store.database import new_id
from collab.store.uploads import Upload
from collab.web.api import describe, session_csrf_ok
from collab.web.auth import client_address, current_user
from collab.web.errors import error, problem
from collab.web.render import render

TUS_VERSION = "1.0.0"
UPLOADERS = ("pathologist", "admin")
# Received bytes are written in pieces of this size, off the event loop.
WRITE_BYTES = 1 << 20
UPLOAD_ID_LENGTH = 16


def _tus(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **(headers or {})}


def _tus_problem(status: int, detail: str, **headers: str) -> Response:
    answer = problem(status, detail)
    answer.headers.update(_tus(headers))
    return answer


def part_path(settings: Settings, upload_id: str) -> Path:
    return settings.data_dir / "uploads" / f"{upload_id}.part"


def _metadata(header: str) -> dict[str, str] | None:
    """Upload-Metadata: comma-separated ``key base64(value)`` pairs; None if malformed."""
    values: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    return values


def _uploads_in_progress(request: Request) -> set[str]:
    """Uploads a PATCH is writing to now (a second PATCH would interleave bytes)."""
    state = request.app.state
    if not hasattr(state, "uploads_in_progress"):
        state.uploads_in_progress = set()
    busy: set[str] = state.uploads_in_progress
    return busy


async def _sweep_expired(db: Database, settings: Settings) -> None:
    """Abandoned uploads: partial files nobody added to for a day are removed."""
    for upload_id in await db.uploads.expired():
        await asyncio.to_thread(part_path(settings, upload_id).unlink, missing_ok=True)
        await db.uploads.delete(upload_id)


async def _own_upload(request: Request) -> Upload | None:
    """The caller's upload named in the path; another person's is as if it did not exist."""
    upload_id = request.path_params["upload_id"]
    if len(upload_id) != UPLOAD_ID_LENGTH or not upload_id.isalnum():
        return None
    upload = await request.app.state.db.uploads.get(upload_id)
    if upload is None or upload.user_id != current_user(request).id:
        return None
    return upload


async def writable_case(request: Request, case_id: str) -> bool:
    """Whether the caller may add slides to the case."""
    found = await request.app.state.access.case(request, case_id)
    return found is not None and found[1].contribute


# -- tus ----------------------------------------------------------------------


async def options(request: Request) -> Response:
    """``OPTIONS /api/uploads``: what this tus server supports."""
    settings: Settings = request.app.state.settings
    return Response(
        status_code=204,
        headers=_tus(
            {
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": "creation,termination,expiration",
                "Tus-Max-Size": str(settings.max_upload_bytes),
            }
        ),
    )


async def create(request: Request) -> Response:
    """``POST /api/uploads``: start an upload (Upload-Length, Upload-Metadata filename and case_id)."""
    if request.method == "OPTIONS":
        return await options(request)
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    user = current_user(request)
    if request.headers.get("tus-resumable") != TUS_VERSION:
        return _tus_problem(412, "Send Tus-Resumable: 1.0.0.", **{"Tus-Version": TUS_VERSION})
    if not session_csrf_ok(request):
        return _tus_problem(403, "Missing or wrong X-CSRF-Token header for this session.")
    if user.role not in UPLOADERS:
        return _tus_problem(403, "Only pathologists and administrators upload slides.")
    raw_length = request.headers.get("upload-length", "")
    if not raw_length.isdigit() or len(raw_length) > 19:
        return _tus_problem(400, "Send the file's size in bytes as Upload-Length.")
    length = int(raw_length)
    if length > settings.max_upload_bytes:
        limit_gib = settings.max_upload_bytes / (1 << 30)
        return _tus_problem(413, f"The file is larger than the largest slide accepted ({limit_gib:g} GiB).")
    if length == 0:
        return _tus_problem(400, "The file is empty.")
    metadata = _metadata(request.headers.get("upload-metadata", ""))
    if metadata is None:
        return _tus_problem(400, "Upload-Metadata must be comma-separated 'key base64value' pairs.")
    filename = Path(metadata.get("filename", "").replace("\\", "/")).name.strip()[:255]
    if Path(filename).suffix.lower() not in intake.UPLOAD_SUFFIXES:
        return _tus_problem(
            415, "Choose an SVS, NDPI or TIFF slide file, or a DICOM slide folder packed as a .zip file."
        )
    case_id = metadata.get("case_id") or None
    if case_id is not None and not await writable_case(request, case_id):
        return _tus_problem(404, "No such case, or you may not add slides to it.")
    await _sweep_expired(db, settings)
    upload = await db.uploads.create(user.id, case_id, filename, length)
    part = part_path(settings, upload.id)
    await asyncio.to_thread(part.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(part.touch)
    location = f"/api/uploads/{upload.id}"
    return JSONResponse(
        {"id": upload.id, "url": location, "offset": 0, "length": length},
        status_code=201,
        headers=_tus({"Location": location, "Upload-Offset": "0"}),
    )


async def resource(request: Request) -> Response:
    """``/api/uploads/{upload_id}``: HEAD (offset), GET (JSON state), PATCH (bytes), DELETE."""
    upload = await _own_upload(request)
    if upload is None:
        return _tus_problem(404, "No such upload.")
    if request.method == "GET":
        return JSONResponse(await upload_state(request, upload), headers=_tus())
    if request.method == "HEAD":
        return await _head(request, upload)
    if request.headers.get("tus-resumable") != TUS_VERSION:
        return _tus_problem(412, "Send Tus-Resumable: 1.0.0.", **{"Tus-Version": TUS_VERSION})
    if not session_csrf_ok(request):
        return _tus_problem(403, "Missing or wrong X-CSRF-Token header for this session.")
    if request.method == "DELETE":
        return await _terminate(request, upload)
    return await _patch(request, upload)


async def upload_state(request: Request, upload: Upload) -> dict[str, Any]:
    part = part_path(request.app.state.settings, upload.id)
    offset = upload.length if upload.state == "done" else await asyncio.to_thread(_size, part)
    state: dict[str, Any] = {
        "id": upload.id,
        "filename": upload.filename,
        "length": upload.length,
        "offset": offset,
        "state": upload.state,
        "case_id": upload.case_id,
        "slide_id": upload.slide_id,
        "refusal": upload.refusal,
    }
    return state


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _head(request: Request, upload: Upload) -> Response:
    if upload.state == "refused":
        return _tus_problem(410, upload.refusal or "The upload was refused.")
    state = await upload_state(request, upload)
    headers = {"Upload-Offset": str(state["offset"]), "Upload-Length": str(upload.length)}
    if upload.slide_id:
        headers["Collab-Slide-Id"] = upload.slide_id
    return Response(status_code=200, headers=_tus(headers))


async def _terminate(request: Request, upload: Upload) -> Response:
    if upload.id in _uploads_in_progress(request):
        return _tus_problem(423, "The upload is receiving data; try again in a moment.")
    await asyncio.to_thread(part_path(request.app.state.settings, upload.id).unlink, missing_ok=True)
    await request.app.state.db.uploads.delete(upload.id)
    return Response(status_code=204, headers=_tus())


async def _patch(request: Request, upload: Upload) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
        return _tus_problem(415, "Send the bytes as application/offset+octet-stream.")
    if upload.state != "receiving":
        return _tus_problem(409, "The upload is already complete.")
    busy = _uploads_in_progress(request)
    if upload.id in busy:
        return _tus_problem(423, "The upload is receiving data on another connection; try again shortly.")
    busy.add(upload.id)
    try:
        part = part_path(request.app.state.settings, upload.id)
        offset = await asyncio.to_thread(_size, part)
        claimed = request.headers.get("upload-offset", "")
        if not claimed.isdigit() or int(claimed) != offset:
            return _tus_problem(409, f"The upload is at offset {offset}.", **{"Upload-Offset": str(offset)})
        try:
            offset = await _receive(request, part, offset, upload.length)
        except ClientDisconnect:
            # What arrived is on disk; the client asks with HEAD where to go on from.
            return Response(status_code=400)
        except _TooLong:
            return _tus_problem(413, "More bytes were sent than the Upload-Length announced.")
        await request.app.state.db.uploads.touch(upload.id)
        if offset < upload.length:
            return Response(status_code=204, headers=_tus({"Upload-Offset": str(offset)}))
        return await _complete(request, upload)
    finally:
        busy.discard(upload.id)


class _TooLong(Exception):
    pass


async def _receive(request: Request, part: Path, offset: int, length: int) -> int:
    """Append the request body at ``offset`` as it streams in; returns the new offset."""
    fd = await asyncio.to_thread(os.open, part, os.O_WRONLY)
    pending = bytearray()
    start = offset
    try:
        async for chunk in request.stream():
            if offset + len(pending) + len(chunk) > length:
                await asyncio.to_thread(os.ftruncate, fd, start)
                raise _TooLong
            pending += chunk
            if len(pending) >= WRITE_BYTES:
                offset += await asyncio.to_thread(os.pwrite, fd, bytes(pending), offset)
                pending.clear()
    finally:
        # Written even when the connection drops: every byte received counts towards the resume.
        if pending:
            offset += await asyncio.to_thread(os.pwrite, fd, bytes(pending), offset)
        await asyncio.to_thread(os.close, fd)
    return offset


async def _complete(request: Request, upload: Upload) -> Response:
    """Check the finished file, store it and register it; or refuse it and keep nothing."""
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    user = current_user(request)
    store_name = new_id()
    try:
        target, found = await asyncio.to_thread(
            intake.store_upload,
            part_path(settings, upload.id),
            upload.filename,
            settings.data_dir / "slides",
            store_name,
            settings.max_upload_bytes,
        )
    except SlideError as exc:
        refusal = f"This file is not a slide we can read: {exc}"
        await db.uploads.finish(upload.id, refusal=refusal)
        await db.audit.record(
            "slide upload refused",
            user=user,
            client=client_address(request),
            case_id=upload.case_id,
            detail=f"{upload.filename}: {exc}"[:500],
        )
        return _tus_problem(422, refusal)
    slide_id = await register(request, user, upload, target, found)
    await db.uploads.finish(upload.id, slide_id=slide_id)
    return Response(
        status_code=204, headers=_tus({"Upload-Offset": str(upload.length), "Collab-Slide-Id": slide_id})
    )


async def register(
    request: Request, user: User, upload: Upload, target: Path, found: intake.Inspection
) -> str:
    """Register a stored slide with the upload's case, else as an unassigned slide of the uploader's trust."""
    db: Database = request.app.state.db
    case_id = upload.case_id if upload.case_id and await writable_case(request, upload.case_id) else None
    if case_id is not None:
        record, new = await db.catalog.add_slide(
            case_id, str(target), width=found.width, height=found.height, vendor=found.vendor, stain=None
        )
        slide_id = record.id
        if new:
            await queue_for_new_slide(
                db, slide_id, case_id, request.app.state.settings.analyse_on_registration,
                user=user, client=client_address(request),
            )  # fmt: skip
    else:
        size, mtime_ns = await asyncio.to_thread(intake.file_identity, target)
        unassigned = await db.uploads.add_unassigned(
            user.org_id,
            str(target),
            source="upload",
            file_size=size,
            mtime_ns=mtime_ns,
            filename=upload.filename,
            width=found.width,
            height=found.height,
            vendor=found.vendor,
            barcode=found.barcode,
            has_label=found.has_label,
        )
        assert unassigned is not None  # a new file in the store is never known already
        slide_id = unassigned.id
    await db.audit.record(
        "slide uploaded",
        user=user,
        client=client_address(request),
        case_id=case_id,
        slide_id=slide_id,
        detail=f"{upload.filename} ({upload.length} bytes){'' if case_id else ', unassigned'}",
    )
    return slide_id


# -- the page -----------------------------------------------------------------


async def new_slides_page(request: Request) -> Response:
    """``GET /slides/new``: choose a case (or none) and upload slide files."""
    user = current_user(request)
    if user.role not in UPLOADERS:
        return error(403, "Only pathologists and administrators upload slides.")
    db: Database = request.app.state.db
    cases = []
    for case in await db.catalog.visible_cases(user.org_id, user.id, own_org=True):
        if await writable_case(request, case.id):
            cases.append(case)
    chosen = request.query_params.get("case", "")
    settings: Settings = request.app.state.settings
    return render(
        request,
        "slides_new.html",
        cases=cases,
        chosen=chosen if any(c.id == chosen for c in cases) else "",
        max_gib=f"{settings.max_upload_bytes / (1 << 30):g}",
        suffixes=",".join(intake.UPLOAD_SUFFIXES),
    )


UPLOAD_STATE = {
    "type": "object",
    "required": ["id", "filename", "length", "offset", "state"],
    "properties": {
        "id": {"type": "string"},
        "filename": {"type": "string"},
        "length": {"type": "integer"},
        "offset": {"type": "integer"},
        "state": {"type": "string", "enum": ["receiving", "done", "refused"]},
        "case_id": {"type": ["string", "null"]},
        "slide_id": {"type": ["string", "null"]},
        "refusal": {"type": ["string", "null"]},
    },
}
TUS = "tus 1.0 (https://tus.io/protocols/resumable-upload); send Tus-Resumable: 1.0.0. "
describe(
    "/api/uploads",
    "post",
    TUS + "Create an upload: Upload-Length (bytes; over the maximum: 413) and Upload-Metadata "
    "(filename, optional case_id; no case_id: the slide is unassigned). Answers 201 with Location.",
    response={"type": "object", "properties": {"id": {"type": "string"}, "url": {"type": "string"}}},
    status=201,
    tag="uploads",
)
describe(
    "/api/uploads/{upload_id}",
    "get",
    "The upload's state as JSON. tus clients ask HEAD for Upload-Offset, and OPTIONS /api/uploads "
    "for Tus-Version, Tus-Extension and Tus-Max-Size. Another person's upload: 404.",
    response=UPLOAD_STATE,
    tag="uploads",
)
describe(
    "/api/uploads/{upload_id}",
    "patch",
    TUS + "Append bytes (application/offset+octet-stream) at Upload-Offset (wrong offset: 409). "
    "The last piece completes the upload: the slide is checked and registered (Collab-Slide-Id), "
    "or refused with 422 and removed.",
    status=204,
    tag="uploads",
)
describe("/api/uploads/{upload_id}", "delete", TUS + "Abandon the upload", status=204, tag="uploads")

routes = [
    Route("/slides/new", new_slides_page),
    Route("/api/uploads", create, methods=["POST", "OPTIONS"]),
    Route("/api/uploads/{upload_id}", resource, methods=["GET", "HEAD", "PATCH", "DELETE"]),
]
