"""Snapshots: a slide region as a PNG, with the annotations and a scale bar, made by someone on
the case's clinical team (or a teaching session's educator), kept, downloadable, audited, and
attachable to a meeting's outcome of the case (then shown in the printable summary).

    POST /api/cases/{case_id}/snapshots          {slide, x, y, width, height, caption?, meeting?}
    GET  /snapshots/{snapshot_id}.png            (?download=1 to save it; audited)
    POST /teach/{session_id}/snapshots           {slide: alias, x, y, width, height}
    GET  /teach/{session_id}/snapshots/{snapshot_id}.png

A teaching snapshot is stored with no case, named after the session's alias and nothing else,
and its PNG holds pixels only: no label, no accession, no ids (collab.slides.snapshot).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.domain import User
from collab.meetings import may_record
from collab.slides.library import SlideNotFound
from collab.slides.reader import SlideError
from collab.slides.snapshot import MAX_SNAPSHOT_PX, SnapshotError, clip_region, render
from collab.store import Database
from collab.store.snapshots import Snapshot
from collab.web.api import describe, read_json
from collab.web.auth import client_address, current_user
from collab.web.classroom import attendee
from collab.web.errors import error, problem
from collab.web.teaching import attendee_json

SNAPSHOT_ID = re.compile(r"[0-9a-f]{16}")
MAX_CAPTION = 200
FIELDS = {"slide", "x", "y", "width", "height", "caption", "meeting"}


def _folder(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir) / "snapshots"


def _annotations(doc: Doc[Any], slide_id: str) -> list[dict[str, Any]]:
    if "annotations" not in set(doc.keys()):
        return []
    values = json.loads(str(doc.get("annotations", type=Map)))
    return [v for v in values.values() if isinstance(v, dict) and v.get("slide") == slide_id]


def _region_of(body: dict[str, Any]) -> tuple[Any, ...] | str:
    if not set(body) <= FIELDS or not {"slide", "x", "y", "width", "height"} <= set(body):
        return "Send {slide, x, y, width, height} in level-0 pixels, and optionally caption and meeting."
    caption = body.get("caption", "")
    if not isinstance(caption, str) or len(caption) > MAX_CAPTION:
        return f"caption is text of at most {MAX_CAPTION} characters."
    return body["x"], body["y"], body["width"], body["height"], caption.strip()


async def _make(
    request: Request, *, slide_id: str, region: tuple[Any, ...], annotations: list[dict[str, Any]]
) -> tuple[str, int, int, Any] | Response:
    """Render and store the PNG; its id, size and the clipped region (or the refusal)."""
    try:
        slide = await request.app.state.slides.get(slide_id)
    except SlideNotFound:
        return problem(404, "No such slide.")
    except SlideError:
        return problem(503, "The slide cannot be read just now.")
    x, y, width, height, _ = region
    try:
        clipped = clip_region(slide, x, y, width, height)
    except SnapshotError as exc:
        return problem(422, str(exc))
    mpp = slide.reader.properties.mpp_x
    # Reading and encoding up to 4096 x 4096 pixels: never on the event loop.
    png, image_w, image_h = await asyncio.to_thread(render, slide, clipped, annotations=annotations, mpp=mpp)
    snapshot_id = secrets.token_hex(8)
    folder = _folder(request)
    await asyncio.to_thread(_write, folder / f"{snapshot_id}.png", png)
    return snapshot_id, image_w, image_h, clipped


async def _stored(
    db: Database,
    made: tuple[str, int, int, Any],
    *,
    case_id: str | None,
    teaching_id: str | None,
    slide_id: str,
    by: int,
    caption: str,
    meeting_id: str | None,
) -> Snapshot:
    """The record of a snapshot just rendered (``_make``): of a case, or of a teaching session."""
    snapshot_id, image_w, image_h, clipped = made
    return await db.snapshots.add(
        Snapshot(
            snapshot_id,
            case_id,
            slide_id,
            teaching_id,
            by,
            "",
            clipped.x,
            clipped.y,
            clipped.width,
            clipped.height,
            image_w,
            image_h,
            caption,
            meeting_id,
        )  # fmt: skip
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)


async def create(request: Request) -> Response:
    """``POST /api/cases/{case_id}/snapshots``"""
    case_id = request.path_params["case_id"]
    found = await request.app.state.access.case(request, case_id)
    if found is None:
        return await request.app.state.access.refusal(request, case_id, api=True)
    case, access = found
    if not access.discuss:
        return problem(403, "Snapshots are made by the case's clinical team.")
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    region = _region_of(body)
    if isinstance(region, str):
        return problem(422, region)
    db: Database = request.app.state.db
    user = current_user(request)
    slides = {record.id for record in await db.catalog.slides_of_case(case.id)}
    if body["slide"] not in slides:
        return problem(422, "slide must be one of this case's slides.")
    meeting_id = body.get("meeting")
    if meeting_id is not None:
        refused = await _may_attach(db, user, meeting_id, case.id)
        if refused:
            return refused
    doc = await request.app.state.rooms.document(case.id)
    drawn = _annotations(doc, body["slide"])
    made = await _make(request, slide_id=body["slide"], region=region, annotations=drawn)
    if isinstance(made, Response):
        return made
    clipped = made[3]
    snapshot = await _stored(
        db, made, case_id=case.id, teaching_id=None, slide_id=body["slide"], by=user.id,
        caption=region[4], meeting_id=meeting_id,
    )  # fmt: skip
    await db.audit.record(
        "snapshot made",
        user=user,
        client=client_address(request),
        case_id=case.id,
        slide_id=snapshot.slide_id,
        detail=f"snapshot {snapshot.id}: {clipped.width}x{clipped.height} at {clipped.x},{clipped.y}"
        + (f", attached to meeting {meeting_id}'s outcome" if meeting_id else ""),
    )
    return JSONResponse(_described(snapshot, f"/snapshots/{snapshot.id}.png"), status_code=201)


async def _may_attach(db: Database, user: Any, meeting_id: object, case_id: str) -> Response | None:
    meeting = await db.meetings.get(meeting_id) if isinstance(meeting_id, str) else None
    if meeting is None or not may_record(user, meeting):
        return problem(403, "Only the meeting's chair or coordinator attaches snapshots to its outcomes.")
    if case_id not in {item.case_id for item in await db.meetings.agenda(meeting.id)}:
        return problem(404, "That case is not on this meeting's agenda.")
    if await db.meetings.closed(meeting.id):
        return problem(409, "This meeting is closed: its outcomes can no longer be changed.")
    return None


def _described(snapshot: Snapshot, url: str) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "url": url,
        "download": f"{url}?download=1",
        "width": snapshot.image_width,
        "height": snapshot.image_height,
        "region": {"x": snapshot.x, "y": snapshot.y, "width": snapshot.width, "height": snapshot.height},
        "caption": snapshot.caption,
        "meeting": snapshot.meeting_id,
    }


async def image(request: Request) -> Response:
    """``GET /snapshots/{snapshot_id}.png``: for whoever may see the case."""
    snapshot_id = request.path_params["snapshot_id"]
    db: Database = request.app.state.db
    snapshot = await db.snapshots.get(snapshot_id) if SNAPSHOT_ID.fullmatch(snapshot_id) else None
    if snapshot is None or snapshot.case_id is None:
        return error(404, "No such snapshot.", request)
    found = await request.app.state.access.case(request, snapshot.case_id)
    if found is None:
        return error(404, "No such snapshot.", request)
    return await _send(request, snapshot, f"snapshot-{snapshot.id}.png", user=current_user(request))


async def _send(
    request: Request, snapshot: Snapshot, filename: str, *, user: User | None, username: str | None = None
) -> Response:
    path = _folder(request) / f"{snapshot.id}.png"
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        return error(404, "The snapshot's image is missing.", request)
    headers = {"Cache-Control": "private, max-age=86400, immutable"}
    if request.query_params.get("download") == "1":
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        await request.app.state.db.audit.record(
            "snapshot downloaded",
            user=user,
            username=username,
            client=client_address(request),
            case_id=snapshot.case_id,
            detail=f"snapshot {snapshot.id}"
            + (f" of teaching session {snapshot.teaching_id}" if snapshot.teaching_id else ""),
        )
    return Response(data, media_type="image/png", headers=headers)


async def teaching_create(request: Request) -> Response:
    """``POST /teach/{session_id}/snapshots``: the educator's, of a slide by its alias."""
    found = await attendee_json(request)
    if isinstance(found, Response):
        return found
    who, body = found
    if not who.educator:
        return error(403, "Only the educator makes snapshots in a teaching session.", api=True)
    if "meeting" in body:
        return problem(422, "A teaching snapshot attaches to no meeting.")
    region = _region_of(body)
    if isinstance(region, str):
        return problem(422, region)
    aliases = await request.app.state.classroom.slides(who.session.id)
    alias = aliases.get(body["slide"]) if isinstance(body["slide"], str) else None
    if alias is None:
        return problem(422, "slide must be one of this session's slides.")
    doc = await request.app.state.teaching_rooms.document(who.session.id)
    # The teaching document names slides by their aliases.
    drawn = _annotations(doc, alias.alias)
    made = await _make(request, slide_id=alias.slide_id, region=region, annotations=drawn)
    if isinstance(made, Response):
        return made
    db: Database = request.app.state.db
    snapshot = await _stored(
        db, made, case_id=None, teaching_id=who.session.id, slide_id=alias.slide_id, by=who.user.id,
        caption=region[4], meeting_id=None,
    )  # fmt: skip
    await db.audit.record(
        "snapshot made",
        user=who.user,
        client=client_address(request),
        detail=f"snapshot {snapshot.id} of teaching session {who.session.id}, slide {alias.alias}",
    )
    described = _described(snapshot, f"/teach/{who.session.id}/snapshots/{snapshot.id}.png")
    del described["region"]  # in the real slide's pixels: nothing a student's copy needs
    return JSONResponse(described, status_code=201)


async def teaching_image(request: Request) -> Response:
    """``GET /teach/{session_id}/snapshots/{snapshot_id}.png``: for the session's people."""
    who = await attendee(request)
    snapshot_id = request.path_params["snapshot_id"]
    db: Database = request.app.state.db
    snapshot = await db.snapshots.get(snapshot_id) if SNAPSHOT_ID.fullmatch(snapshot_id) else None
    if who is None or snapshot is None or snapshot.teaching_id != who.session.id:
        return error(404, "No such snapshot.", request)
    aliases = await request.app.state.classroom.slides(who.session.id)
    alias = next((a.alias for a in aliases.values() if a.slide_id == snapshot.slide_id), "slide")
    # A student is a guest with no account: the audit names them as they joined.
    user, guest = (who.user, None) if who.educator else (None, f"teaching guest {who.user.display_name}")
    return await _send(request, snapshot, f"teaching-{alias}-snapshot.png", user=user, username=guest)


describe(
    "/api/cases/{case_id}/snapshots",
    "post",
    "Snapshot a slide region as a PNG (annotations and scale bar drawn in; at most"
    f" {MAX_SNAPSHOT_PX} px on its long side), optionally attached to a meeting's outcome of the case",
    body={
        "type": "object",
        "required": ["slide", "x", "y", "width", "height"],
        "properties": {
            "slide": {"type": "string"},
            "x": {"type": "number"},
            "y": {"type": "number"},
            "width": {"type": "number"},
            "height": {"type": "number"},
            "caption": {"type": "string", "maxLength": MAX_CAPTION},
            "meeting": {"type": "string"},
        },
    },
    response={"type": "object", "required": ["id", "url", "width", "height"]},
    status=201,
    tag="cases",
)

routes = [
    Route("/api/cases/{case_id}/snapshots", create, methods=["POST"]),
    Route("/snapshots/{snapshot_id}.png", image),
    Route("/teach/{session_id}/snapshots", teaching_create, methods=["POST"]),
    Route("/teach/{session_id}/snapshots/{snapshot_id}.png", teaching_image),
]
