"""MDT meetings on the web: the meeting page, recording and signing off outcomes, the summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.domain import Case, Meeting, User, case_title
from collab.meeting_plans import may_edit, uk_from_utc
from collab.meetings import (
    Invalid,
    MeetingRefused,
    NotAllowed,
    close_meeting,
    may_record,
    may_sign_off,
    presents,
    record_outcome,
    seconds_spent,
    sign_off,
    takes_part,
)
from collab.store import Database
from collab.web.access import AccessControl
from collab.web.auth import checked_form, client_address, current_user
from collab.web.csvsafe import csv_text
from collab.web.errors import error
from collab.web.meeting_state import outcome_view, publish
from collab.web.render import render, uk_time
from collab.web.sync import drop_lost_peers

CSV_COLUMNS = (
    "position",
    "case",
    "planned_minutes",
    "minutes_spent",
    "decision",
    "notes",
    "recorded_by",
    "recorded_uk_time",
    "signed_off_by",
    "signed_off_uk_time",
    "question",
    # Filled only for those who may see patient identifiers.
    "patient_name",
    "nhs_number",
    "date_of_birth",
)


def patient_of(case: Case) -> dict[str, str | None]:
    return {
        "name": case.patient.name,
        "nhs_number": case.patient.nhs_number,
        "date_of_birth": case.patient.date_of_birth,
    }


def clock(seconds: int) -> str:
    """Time spent as the room's timers show it: 2:05, or 1:02:05 past an hour."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def wants_json(request: Request) -> bool:
    """A room page's fetch, which updates in place, rather than a form that expects a page."""
    return "application/json" in request.headers.get("accept", "")


async def find_meeting(
    request: Request, meeting_id: str | None = None
) -> tuple[Meeting, list[tuple[int, str | None]]] | None:
    """The meeting and its participants, if the signed-in person takes part in it."""
    db: Database = request.app.state.db
    meeting = await db.meetings.get(meeting_id or request.path_params["meeting_id"])
    if meeting is None:
        return None
    attendees = await db.meetings.attendees(meeting.id)
    if not takes_part(current_user(request), meeting, {user_id for user_id, _ in attendees}):
        return None  # someone with no part in a meeting is not told that it exists
    return meeting, attendees


async def _describe(
    request: Request, meeting: Meeting, attendees: list[tuple[int, str | None]]
) -> dict[str, Any]:
    """A meeting as its pages show it to the signed-in person."""
    db: Database = request.app.state.db
    access_control: AccessControl = request.app.state.access
    user = current_user(request)
    closed = await db.meetings.closed(meeting.id)
    people: dict[int, User | None] = {}

    async def name(user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in people:
            people[user_id] = await db.people.user(user_id)
        found = people[user_id]
        return found.display_name if found else None

    org = await db.catalog.org(meeting.org_id)
    presentations = await db.meetings.presentations(meeting.id)
    spent = seconds_spent(presentations, datetime.now(UTC))
    agenda = []
    for item in await db.meetings.agenda(meeting.id):
        seen = await access_control.case(request, item.case_id)
        # Named as the worklist names it; a case closed to this person is not linked.
        title = case_title(*seen) if seen else f"Case {item.case_id[:6]}"
        case_org = await db.catalog.org(seen[0].org_id) if seen else None
        agenda.append(
            {
                "case_id": item.case_id,
                "title": title,
                "question": item.question,
                "presenter": await name(item.presenter),
                "presenter_id": item.presenter,
                "case_organisation": case_org.name if case_org else None,
                # Identifiers only for those who may see them (collab.domain.case_access).
                "patient": patient_of(seen[0]) if seen and seen[1].identified else None,
                "can_open_case": seen is not None,
                "position": item.position,
                "planned_minutes": item.planned_minutes,
                "seconds_spent": spent.get(item.case_id, 0),
                "time_spent": clock(spent[item.case_id]) if item.case_id in spent else None,
                "outcome": await outcome_view(item, name),
                # Snapshots attached to the outcome, for those who may see the case.
                "snapshots": [
                    {"url": f"/snapshots/{s.id}.png", "caption": s.caption, "width": s.image_width}
                    for s in (await db.snapshots.of_outcome(meeting.id, item.case_id) if seen else [])
                ],
            }
        )
    # The catch-up timeline: which case was on screen when, each replayable on its case page.
    titles = {item["case_id"]: item for item in agenda}
    timeline = [
        {
            "case_id": p.case_id,
            "title": titles[p.case_id]["title"] if p.case_id in titles else "A case",
            "can_open_case": p.case_id in titles and titles[p.case_id]["can_open_case"],
            "started": p.started,
            "ended": p.ended,
            "presented_by": await name(p.presented_by),
        }
        for p in presentations
    ]
    return {
        "id": meeting.id,
        "name": meeting.name,
        "starts": meeting.starts,
        "starts_uk": uk_from_utc(meeting.starts),
        "status": "closed" if closed else meeting.status,
        "may_edit": may_edit(user, meeting),
        "timeline": timeline,
        "organisation": org.name if org else None,
        "chair": await name(meeting.chair),
        "coordinator": await name(meeting.coordinator),
        "attendees": [
            {"id": user_id, "name": await name(user_id), "attended": attended}
            for user_id, attended in attendees
        ],
        "agenda": agenda,
        "may_record": may_record(user, meeting) and not closed and meeting.status == "scheduled",
        "may_sign_off": may_sign_off(user, meeting) and not closed,
        "may_close": may_record(user, meeting) and not closed,
        "closed": closed,
    }


async def meeting_mode(request: Request, case_id: str) -> dict[str, Any] | None:
    """For a case page opened in a meeting room (``?meeting={id}``): the meeting, and whether this
    person presents there; None (an ordinary case page) unless they take part and the case is
    on its agenda."""
    meeting_id = request.query_params.get("meeting")
    if not meeting_id:
        return None
    found = await find_meeting(request, meeting_id)
    if found is None:
        return None
    meeting, _ = found
    if case_id not in {item.case_id for item in await request.app.state.db.meetings.agenda(meeting.id)}:
        return None
    return {"id": meeting.id, "presents": presents(current_user(request), meeting)}


async def my_meetings(request: Request) -> list[dict[str, Any]]:
    """The signed-in person's meetings for the worklist: upcoming first."""
    db: Database = request.app.state.db
    found = await db.meetings.of_user(current_user(request).id)
    return [{"id": m.id, "name": m.name, "starts": m.starts} for m in found]


async def audit_view(request: Request, meeting: Meeting, event: str = "meeting viewed") -> None:
    """Record that the signed-in person saw (or exported) what a meeting page shows of its cases."""
    await request.app.state.db.audit.record(
        event,
        user=current_user(request),
        client=client_address(request),
        detail=f"meeting {meeting.id}: {request.url.path}",
    )


async def enter_meeting(request: Request) -> Meeting | None:
    """The meeting, if the signed-in person takes part, for its page or room; the view is audited.

    Opening a page changes nothing else: another site can open it by a link (our cookie is
    SameSite=Lax). Attendance is marked by the room's live connection (meeting_room.events).
    """
    db: Database = request.app.state.db
    found = await find_meeting(request)
    if found is None:
        return None
    meeting, _ = found
    # Meetings are made on the command line, whose shares this process has not seen being made.
    for item in await db.meetings.agenda(meeting.id):
        request.app.state.access.forget(item.case_id)
    await audit_view(request, meeting)
    return meeting


async def meeting_page(request: Request) -> Response:
    """``GET /meetings/{id}``: participants, the agenda and its outcomes."""
    db: Database = request.app.state.db
    meeting = await enter_meeting(request)
    if meeting is None:
        return error(404, "No such meeting.")
    attendees = await db.meetings.attendees(meeting.id)
    data = await _describe(request, meeting, attendees)
    decisions = request.app.state.settings.decisions
    return render(request, "meeting.html", meeting=data, decisions=decisions, uk_time=uk_time)


async def summary_page(request: Request) -> Response:
    """``GET /meetings/{id}/summary``: the outcomes, printable."""
    found = await find_meeting(request)
    if found is None:
        return error(404, "No such meeting.")
    await audit_view(request, found[0])
    return render(request, "meeting_summary.html", meeting=await _describe(request, *found), uk_time=uk_time)


async def outcomes_csv(request: Request) -> Response:
    """``GET /meetings/{id}/outcomes.csv``: one row per agenda case."""
    found = await find_meeting(request)
    if found is None:
        return error(404, "No such meeting.")
    data = await _describe(request, *found)
    rows = []
    for item in data["agenda"]:
        outcome = item["outcome"] or {}
        patient = item["patient"] or {}
        rows.append(
            [item["position"], item["title"], item["planned_minutes"], f"{item['seconds_spent'] / 60:.1f}"]
            + [outcome.get("decision") or "", outcome.get("notes") or "", outcome.get("recorded_by") or ""]
            + [uk_time(outcome.get("recorded")), outcome.get("signed_off_by") or ""]
            + [uk_time(outcome.get("signed_off")), item["question"]]
            + [patient.get("name") or "", patient.get("nhs_number") or "", patient.get("date_of_birth") or ""]
        )
    await audit_view(request, found[0], "meeting exported")
    return Response(
        csv_text(CSV_COLUMNS, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="meeting-{data["id"]}-outcomes.csv"'},
    )


def refused(exc: MeetingRefused) -> Response:
    status = 403 if isinstance(exc, NotAllowed) else 400 if isinstance(exc, Invalid) else 409
    return error(status, str(exc))


async def meeting_form(request: Request) -> tuple[Meeting, FormData] | Response:
    """A form posted to a meeting: CSRF-checked, from someone taking part (else the refusal)."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = await find_meeting(request)
    if found is None:
        return error(404, "No such meeting.")
    return found[0], form


async def off_agenda(db: Database, meeting: Meeting, case_id: str) -> Response | None:
    """The refusal for a case that is not on the meeting's agenda; None if it is."""
    if case_id in {item.case_id for item in await db.meetings.agenda(meeting.id)}:
        return None
    return error(404, "That case is not on this meeting's agenda.")


async def outcome_act(
    request: Request, meeting: Meeting, case_id: str, decisions: list[str], notes: str
) -> None:
    """Record a case's outcome (the page's form and the API's twin); MeetingRefused says why not."""
    await record_outcome(
        request.app.state.db,
        meeting,
        case_id,
        by=current_user(request),
        decisions=decisions,
        notes=notes,
        client=client_address(request),
        allowed=request.app.state.settings.decisions,
    )
    await publish(request.app, meeting)


async def sign_off_act(request: Request, meeting: Meeting, case_id: str) -> None:
    await sign_off(
        request.app.state.db, meeting, case_id, by=current_user(request), client=client_address(request)
    )
    await publish(request.app, meeting)


async def close_act(request: Request, meeting: Meeting) -> None:
    """Close the meeting: the shares it made end, so outside participants no longer see its
    cases, and live links to them close."""
    db: Database = request.app.state.db
    await close_meeting(db, meeting, by=current_user(request), client=client_address(request))
    for item in await db.meetings.agenda(meeting.id):
        request.app.state.access.forget(item.case_id)
        await drop_lost_peers(request.app, item.case_id)
    await publish(request.app, meeting)


async def _step(request: Request, action: str) -> Response:
    db: Database = request.app.state.db
    posted = await meeting_form(request)
    if isinstance(posted, Response):
        return posted
    meeting, form = posted
    case_id = request.path_params["case_id"]
    if (refusal := await off_agenda(db, meeting, case_id)) is not None:
        return refusal
    try:
        if action == "outcome":
            decisions = [str(d) for d in form.getlist("decision")]
            await outcome_act(request, meeting, case_id, decisions, str(form.get("notes", "")))
        else:
            await sign_off_act(request, meeting, case_id)
    except MeetingRefused as exc:
        return refused(exc)
    if wants_json(request):
        return JSONResponse({"ok": True})
    return RedirectResponse(f"/meetings/{meeting.id}#case-{case_id}", status_code=303)


async def close_form(request: Request) -> Response:
    """``POST /meetings/{id}/close``: the chair or coordinator closes the meeting; the shares it
    made end, so outside participants no longer see its cases, and live links to them close."""
    posted = await meeting_form(request)
    if isinstance(posted, Response):
        return posted
    meeting, _ = posted
    try:
        await close_act(request, meeting)
    except MeetingRefused as exc:
        return refused(exc)
    return RedirectResponse(f"/meetings/{meeting.id}", status_code=303)


async def outcome_form(request: Request) -> Response:
    """``POST /meetings/{id}/cases/{case_id}/outcome``: the coordinator or chair records a decision."""
    return await _step(request, "outcome")


async def sign_off_form(request: Request) -> Response:
    """``POST /meetings/{id}/cases/{case_id}/sign-off``: the chair signs the outcome off."""
    return await _step(request, "sign-off")


routes = [
    Route("/meetings/{meeting_id}", meeting_page),
    Route("/meetings/{meeting_id}/summary", summary_page),
    Route("/meetings/{meeting_id}/outcomes.csv", outcomes_csv),
    Route("/meetings/{meeting_id}/cases/{case_id}/outcome", outcome_form, methods=["POST"]),
    Route("/meetings/{meeting_id}/cases/{case_id}/sign-off", sign_off_form, methods=["POST"]),
    Route("/meetings/{meeting_id}/close", close_form, methods=["POST"]),
]
