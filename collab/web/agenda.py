"""A meeting's agenda and attendees through the API (the meeting page's builder uses it too).

Every agenda change is a whole ordered list given to collab.meeting_plans.replace_agenda:
POST adds one item at the end, DELETE removes one, PUT gives them all (so reordering too).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.domain import Meeting, case_title
from collab.meeting_plans import add_attendee, may_put_on_agenda, remove_attendee, replace_agenda
from collab.meetings import Invalid, MeetingRefused
from collab.store import Database
from collab.store.meeting_plans import PlannedItem
from collab.web.api import describe, read_json, session_csrf_ok
from collab.web.auth import client_address, current_user
from collab.web.errors import problem
from collab.web.meeting_admin import _status, person, refresh_access
from collab.web.meetings import find_meeting

MAX_RESULTS = 20


def _item(raw: Any) -> PlannedItem:
    if not isinstance(raw, dict) or not isinstance(raw.get("case_id"), str):
        raise Invalid("Each agenda item is an object with a case_id.")
    minutes = raw.get("planned_minutes", 5)
    question = raw.get("question", "")
    presenter = raw.get("presenter")
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        raise Invalid("planned_minutes is a whole number.")
    if not isinstance(question, str):
        raise Invalid("question is text.")
    if presenter is not None and not isinstance(presenter, int):
        raise Invalid("presenter is a user id (from /api/people) or null.")
    return PlannedItem(raw["case_id"], minutes, question.strip(), presenter)


async def _current(db: Database, meeting: Meeting) -> list[PlannedItem]:
    return [
        PlannedItem(i.case_id, i.planned_minutes, i.question, i.presenter)
        for i in await db.meetings.agenda(meeting.id)
    ]


async def _agenda_answer(db: Database, meeting: Meeting) -> Response:
    return JSONResponse(
        [
            {
                "case_id": i.case_id,
                "position": i.position,
                "planned_minutes": i.planned_minutes,
                "question": i.question,
                "presenter": i.presenter,
            }
            for i in await db.meetings.agenda(meeting.id)
        ]
    )


async def agenda_json(request: Request) -> Response:
    """``PUT`` (whole list), ``POST`` (one item) ``/api/meetings/{id}/agenda``."""
    db: Database = request.app.state.db
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    found = await find_meeting(request)
    if found is None:
        return problem(404, "No such meeting.")
    meeting = found[0]
    before = [i.case_id for i in await _current(db, meeting)]  # a removed case closes to outsiders
    try:
        if request.method == "PUT":
            if not isinstance(body.get("items"), list):
                raise Invalid('Send {"items": [...]}, the whole agenda in order.')
            items = [_item(raw) for raw in body["items"]]
        else:
            items = [*await _current(db, meeting), _item(body)]
        await replace_agenda(db, meeting, items, by=current_user(request), client=client_address(request))
    except MeetingRefused as exc:
        return problem(_status(exc), str(exc))
    await refresh_access(request, meeting.id, list({*before, *(i.case_id for i in items)}))
    return await _agenda_answer(db, meeting)


async def agenda_item_delete(request: Request) -> Response:
    """``DELETE /api/meetings/{id}/agenda/{case_id}``"""
    db: Database = request.app.state.db
    if not session_csrf_ok(request):
        return problem(403, "Missing or wrong X-CSRF-Token header for this session.")
    found = await find_meeting(request)
    if found is None:
        return problem(404, "No such meeting.")
    meeting = found[0]
    case_id = request.path_params["case_id"]
    items = await _current(db, meeting)
    if case_id not in {i.case_id for i in items}:
        return problem(404, "That case is not on this meeting's agenda.")
    try:
        kept = [i for i in items if i.case_id != case_id]
        await replace_agenda(db, meeting, kept, by=current_user(request), client=client_address(request))
    except MeetingRefused as exc:
        return problem(_status(exc), str(exc))
    await refresh_access(request, meeting.id, [case_id])
    return await _agenda_answer(db, meeting)


async def attendees_json(request: Request) -> Response:
    """``POST``/``DELETE /api/meetings/{id}/attendees`` with ``{"username": ...}``."""
    db: Database = request.app.state.db
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    found = await find_meeting(request)
    if found is None:
        return problem(404, "No such meeting.")
    meeting = found[0]
    user = current_user(request)
    try:
        if not isinstance(body.get("username"), str):
            raise Invalid("Send the attendee's username.")
        who = await person(db, user, body["username"], "attendee")
        act = add_attendee if request.method == "POST" else remove_attendee
        await act(db, meeting, who, by=user, client=client_address(request))
    except MeetingRefused as exc:
        return problem(_status(exc), str(exc))
    await refresh_access(request, meeting.id)
    names = [await db.people.user(user_id) for user_id, _ in await db.meetings.attendees(meeting.id)]
    return JSONResponse([{"id": p.id, "username": p.username, "name": p.display_name} for p in names if p])


async def case_search(request: Request) -> Response:
    """``GET /api/meetings/{id}/cases?q=``: cases the caller may put on this agenda, by accession
    (and by patient name or NHS number only for those who may see identifiers)."""
    db: Database = request.app.state.db
    found = await find_meeting(request)
    if found is None:
        return problem(404, "No such meeting.")
    user = current_user(request)
    text = request.query_params.get("q", "").strip().lower()
    if len(text) > 100:
        return problem(400, "The search is at most 100 characters.")
    results: list[dict[str, Any]] = []
    orgs: dict[int, str] = {}
    # Cases already on the agenda are not offered again (the agenda holds a case once).
    listed = {item.case_id for item in await db.meetings.agenda(found[0].id)}
    for case in await db.catalog.visible_cases(user.org_id, user.id, own_org=user.role != "student"):
        if case.id in listed:
            continue
        seen = await request.app.state.access.case(request, case.id)  # remembered per case
        if seen is None:
            continue
        _, access = seen
        words = [case.accession.lower()]
        if access.identified:
            words += [(case.patient.name or "").lower(), (case.patient.nhs_number or "").replace(" ", "")]
        if text and not any(text.replace(" ", "") in w.replace(" ", "") for w in words if w):
            continue
        # Last, as it reads the case's shares: only for the cases that match.
        if not await may_put_on_agenda(db, user, case):
            continue
        if case.org_id not in orgs:
            org = await db.catalog.org(case.org_id)
            orgs[case.org_id] = org.name if org else ""
        entry: dict[str, Any] = {
            "case_id": case.id,
            "title": case_title(case, access),
            "organisation": orgs[case.org_id],
            "priority": case.priority,
        }
        if access.identified:
            entry["patient"] = {"name": case.patient.name, "nhs_number": case.patient.nhs_number}
        results.append(entry)
        if len(results) >= MAX_RESULTS:
            break
    return JSONResponse(results)


AGENDA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "case_id": {"type": "string"},
            "position": {"type": "integer"},
            "planned_minutes": {"type": "integer"},
            "question": {"type": "string"},
            "presenter": {"type": ["integer", "null"]},
        },
    },
}
ITEM = {
    "type": "object",
    "required": ["case_id"],
    "properties": {
        "case_id": {"type": "string"},
        "planned_minutes": {"type": "integer", "minimum": 1, "maximum": 120},
        "question": {"type": "string", "maxLength": 2000},
        "presenter": {"type": ["integer", "null"], "description": "a pathologist's user id"},
    },
}
PERSON_BODY = {"type": "object", "required": ["username"], "properties": {"username": {"type": "string"}}}
describe(
    "/api/meetings/{meeting_id}/agenda",
    "put",
    "Replace the agenda with this ordered list (adds, removes, reorders)",
    body={"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": ITEM}}},
    response=AGENDA,
)
describe(
    "/api/meetings/{meeting_id}/agenda",
    "post",
    "Add a case at the end of the agenda",
    body=ITEM,
    response=AGENDA,
)
describe(
    "/api/meetings/{meeting_id}/agenda/{case_id}", "delete", "Take a case off the agenda", response=AGENDA
)
describe(
    "/api/meetings/{meeting_id}/attendees", "post", "Invite a person (any organisation)", body=PERSON_BODY
)
describe("/api/meetings/{meeting_id}/attendees", "delete", "Uninvite a person", body=PERSON_BODY)
describe(
    "/api/meetings/{meeting_id}/cases",
    "get",
    "Cases the caller may put on the agenda, by accession (patient name/NHS number for those allowed)",
    query={"q": {"type": "string"}},
    response={"type": "array"},
)

routes = [
    Route("/api/meetings/{meeting_id}/agenda", agenda_json, methods=["PUT", "POST"]),
    Route("/api/meetings/{meeting_id}/agenda/{case_id}", agenda_item_delete, methods=["DELETE"]),
    Route("/api/meetings/{meeting_id}/attendees", attendees_json, methods=["POST", "DELETE"]),
    Route("/api/meetings/{meeting_id}/cases", case_search),
]
