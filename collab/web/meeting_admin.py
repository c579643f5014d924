"""Arranging MDT meetings in the browser and through the API: the list, new, edit, cancel, reopen.

Forms and JSON twins call the same collab.meeting_plans functions. Times are given and shown
in UK local time (Europe/London); the API also gives the stored UTC minute.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.domain import Meeting, User
from collab.meeting_plans import create_series, may_edit, may_plan, set_status, uk_from_utc, update_meeting
from collab.meetings import Invalid, MeetingRefused, NotAllowed
from collab.store import Database
from collab.store.database import now_iso
from collab.web.api import describe, read_json
from collab.web.auth import checked_form, client_address, current_user
from collab.web.errors import error, problem
from collab.web.meetings import find_meeting
from collab.web.render import render
from collab.web.sync import drop_lost_peers


def _status(exc: MeetingRefused) -> int:
    return 403 if isinstance(exc, NotAllowed) else 422 if isinstance(exc, Invalid) else 409


async def person(db: Database, viewer: User, username: str, role: str) -> User:
    """A person named in a form or body, if the viewer may find them (else Invalid, no hint why)."""
    found = await db.people.findable(viewer, username.strip()) if username.strip() else None
    if found is None:
        raise Invalid(f"Choose the {role}: nobody you can find is called {username.strip()!r}.")
    return found


async def meeting_view(db: Database, meeting: Meeting, user: User) -> dict[str, Any]:
    """A meeting as the list and the API show it."""
    closed = await db.meetings.closed(meeting.id)
    org = await db.catalog.org(meeting.org_id)
    chair = await db.people.user(meeting.chair)
    coordinator = await db.people.user(meeting.coordinator)
    return {
        "id": meeting.id,
        "name": meeting.name,
        "starts_utc": meeting.starts,
        "starts_uk": uk_from_utc(meeting.starts),
        "organisation": org.name if org else None,
        "chair": chair.username if chair else None,
        "coordinator": coordinator.username if coordinator else None,
        "status": "closed" if closed else meeting.status,
        "series_id": meeting.series_id,
        "may_edit": may_edit(user, meeting),
    }


async def refresh_access(request: Request, meeting_id: str, case_ids: list[str] | None = None) -> None:
    """After a change to who takes part: cached rights are forgotten, and live links that lost
    their right (a case page, its websocket) close."""
    if case_ids is None:
        case_ids = [item.case_id for item in await request.app.state.db.meetings.agenda(meeting_id)]
    for case_id in case_ids:
        request.app.state.access.forget(case_id)
        await drop_lost_peers(request.app, case_id)


async def _create(request: Request, fields: dict[str, Any]) -> list[Meeting]:
    db: Database = request.app.state.db
    user = current_user(request)
    org = await db.catalog.org(user.org_id)
    assert org is not None
    weeks = fields.get("weeks", 1)
    if not isinstance(weeks, int) or isinstance(weeks, bool):
        raise Invalid("weeks is a whole number.")
    if not isinstance(fields.get("name"), str) or not isinstance(fields.get("starts_uk"), str):
        raise Invalid("Give the meeting's name and its date and time (UK local time).")
    attendees = fields.get("attendees") or []
    if not isinstance(attendees, list) or not all(isinstance(a, str) for a in attendees):
        raise Invalid("attendees is a list of usernames.")
    return await create_series(
        db,
        fields["name"],
        org=org,
        starts_uk=fields["starts_uk"],
        weeks=weeks,
        chair=await person(db, user, str(fields.get("chair", "")), "chair"),
        coordinator=await person(db, user, str(fields.get("coordinator", "")), "coordinator"),
        attendees=[await person(db, user, a, "attendee") for a in attendees],
        by=user,
        client=client_address(request),
    )


async def _update(request: Request, meeting: Meeting, fields: dict[str, Any]) -> None:
    """Apply a PATCH (or the edit form): ``status`` alone cancels or reopens."""
    db: Database = request.app.state.db
    user = current_user(request)
    if "status" in fields:
        if not isinstance(fields["status"], str):
            raise Invalid("status is 'cancelled' or 'scheduled'.")
        await set_status(db, meeting, fields["status"], by=user, client=client_address(request))
        await refresh_access(request, meeting.id)
        return
    chair = await db.people.user(meeting.chair)
    coordinator = await db.people.user(meeting.coordinator)
    assert chair is not None and coordinator is not None
    for key in ("name", "starts_uk", "chair", "coordinator"):
        if key in fields and not isinstance(fields[key], str):
            raise Invalid(f"{key} is text.")
    await update_meeting(
        db,
        meeting,
        name=fields.get("name", meeting.name),
        starts_uk=fields.get("starts_uk", uk_from_utc(meeting.starts)),
        chair=await person(db, user, fields["chair"], "chair") if "chair" in fields else chair,
        coordinator=await person(db, user, fields["coordinator"], "coordinator")
        if "coordinator" in fields
        else coordinator,
        by=user,
        client=client_address(request),
    )
    await refresh_access(request, meeting.id)


# -- pages ------------------------------------------------------------------------------


async def meetings_page(request: Request) -> Response:
    """``GET /meetings``: the person's meetings, upcoming first."""
    db: Database = request.app.state.db
    user = current_user(request)
    found = [await meeting_view(db, m, user) for m in await db.meetings.of_user(user.id)]
    now = now_iso()[:16]
    return render(
        request,
        "meetings.html",
        upcoming=[m for m in found if m["starts_utc"] >= now],
        past=[m for m in found if m["starts_utc"] < now],
        may_plan=may_plan(user),
    )


async def new_page(request: Request) -> Response:
    """``GET/POST /meetings/new``: arrange a meeting (or a weekly series)."""
    user = current_user(request)
    if not may_plan(user):
        return error(403, "Only administrators, pathologists and clinicians arrange meetings.")
    values: dict[str, Any] = {"coordinator": user.username, "weeks": "1"}
    problem_text = None
    if request.method == "POST":
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        values = {k: str(form.get(k, "")) for k in ("name", "starts_uk", "chair", "coordinator", "weeks")}
        values["weeks"] = values["weeks"] if form.get("repeat") else "1"
        try:
            weeks = values["weeks"].strip()
            made = await _create(request, values | {"weeks": int(weeks) if weeks.isdigit() else 0})
        except MeetingRefused as exc:
            problem_text = str(exc)
        else:
            return RedirectResponse(f"/meetings/{made[0].id}", status_code=303)
    org = await request.app.state.db.catalog.org(user.org_id)
    page = render(
        request,
        "meeting_form.html",
        values=values,
        problem=problem_text,
        org=org.name if org else "",
        meeting=None,
    )
    if problem_text:
        page.status_code = 400
    return page


async def edit_page(request: Request) -> Response:
    """``GET/POST /meetings/{id}/edit``: change the name, time, chair or coordinator."""
    db: Database = request.app.state.db
    found = await find_meeting(request)
    if found is None:
        return error(404, "No such meeting.")
    meeting = found[0]
    user = current_user(request)
    if not may_edit(user, meeting):
        return error(403, "Only the meeting's chair or coordinator changes it.")
    view = await meeting_view(db, meeting, user)
    values = {k: view[k] for k in ("name", "chair", "coordinator")} | {"starts_uk": view["starts_uk"]}
    values["starts_uk"] = values["starts_uk"].replace(" ", "T")
    problem_text = None
    if request.method == "POST":
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        values = {k: str(form.get(k, "")) for k in ("name", "starts_uk", "chair", "coordinator")}
        try:
            await _update(request, meeting, values)
        except MeetingRefused as exc:
            problem_text = str(exc)
        else:
            return RedirectResponse(f"/meetings/{meeting.id}", status_code=303)
    org = await db.catalog.org(meeting.org_id)
    page = render(
        request,
        "meeting_form.html",
        values=values,
        problem=problem_text,
        org=org.name if org else "",
        meeting=view,
    )
    if problem_text:
        page.status_code = 400
    return page


async def status_form(request: Request) -> Response:
    """``POST /meetings/{id}/status`` (field ``status``): cancel or reopen."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = await find_meeting(request)
    if found is None:
        return error(404, "No such meeting.")
    try:
        await _update(request, found[0], {"status": str(form.get("status", ""))})
    except MeetingRefused as exc:
        return error(_status(exc), str(exc))
    return RedirectResponse(f"/meetings/{found[0].id}", status_code=303)


# -- API --------------------------------------------------------------------------------


async def meetings_json(request: Request) -> Response:
    """``GET /api/meetings``; ``POST /api/meetings`` arranges one (or a weekly series)."""
    db: Database = request.app.state.db
    user = current_user(request)
    if request.method == "GET":
        return JSONResponse([await meeting_view(db, m, user) for m in await db.meetings.of_user(user.id)])
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    try:
        made = await _create(request, body)
    except MeetingRefused as exc:
        return problem(_status(exc), str(exc))
    return JSONResponse([await meeting_view(db, m, user) for m in made], status_code=201)


async def meeting_patch(request: Request) -> Response:
    """``PATCH /api/meetings/{id}``: change details, or ``{"status": "cancelled"|"scheduled"}``."""
    db: Database = request.app.state.db
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    found = await find_meeting(request)
    if found is None:
        return problem(404, "No such meeting.")
    try:
        await _update(request, found[0], body)
    except MeetingRefused as exc:
        return problem(_status(exc), str(exc))
    meeting = await db.meetings.get(found[0].id)
    assert meeting is not None
    return JSONResponse(await meeting_view(db, meeting, current_user(request)))


MEETING = {
    "type": "object",
    "required": ["id", "name", "starts_utc", "starts_uk", "status"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "starts_utc": {"type": "string", "description": "YYYY-MM-DDTHH:MM, UTC"},
        "starts_uk": {"type": "string", "description": "YYYY-MM-DD HH:MM, UK local time (Europe/London)"},
        "organisation": {"type": ["string", "null"]},
        "chair": {"type": ["string", "null"]},
        "coordinator": {"type": ["string", "null"]},
        "status": {"enum": ["scheduled", "cancelled", "closed"]},
        "series_id": {"type": ["string", "null"]},
        "may_edit": {"type": "boolean"},
    },
}
NEW_MEETING_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 200},
    "starts_uk": {"type": "string", "description": "YYYY-MM-DDTHH:MM in UK local time (Europe/London)"},
    "chair": {"type": "string", "description": "username"},
    "coordinator": {"type": "string", "description": "username"},
    "attendees": {"type": "array", "items": {"type": "string"}},
    "weeks": {"type": "integer", "minimum": 1, "maximum": 52, "description": "weekly series"},
}
NEW_MEETING = {
    "type": "object",
    "required": ["name", "starts_uk", "chair", "coordinator"],
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "starts_uk": {"type": "string", "description": "YYYY-MM-DDTHH:MM in UK local time (Europe/London)"},
        "chair": {"type": "string", "description": "username"},
        "coordinator": {"type": "string", "description": "username"},
        "attendees": {"type": "array", "items": {"type": "string"}},
        "weeks": {"type": "integer", "minimum": 1, "maximum": 52, "description": "weekly series"},
    },
}
describe(
    "/api/meetings",
    "get",
    "The caller's meetings, upcoming first",
    response={"type": "array", "items": MEETING},
)
describe(
    "/api/meetings",
    "post",
    "Arrange a meeting, or a weekly series of them (one per week, linked by series_id)",
    body=NEW_MEETING,
    response={"type": "array", "items": MEETING},
    status=201,
)
describe(
    "/api/meetings/{meeting_id}",
    "patch",
    "Change a meeting's name, time, chair or coordinator; or cancel/reopen it with status",
    body={
        "type": "object",
        "properties": NEW_MEETING_PROPERTIES | {"status": {"enum": ["cancelled", "scheduled"]}},
    },
    response=MEETING,
)

routes = [
    Route("/meetings", meetings_page),
    Route("/meetings/new", new_page, methods=["GET", "POST"]),
    Route("/meetings/{meeting_id}/edit", edit_page, methods=["GET", "POST"]),
    Route("/meetings/{meeting_id}/status", status_form, methods=["POST"]),
    Route("/api/meetings", meetings_json, methods=["GET", "POST"]),
    Route("/api/meetings/{meeting_id}", meeting_patch, methods=["PATCH"]),
]
