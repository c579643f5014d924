"""The live MDT meeting room: one page per participant, kept in step by the server.

The chair or the coordinator moves the meeting from case to case (``POST .../current``); the
server records it and pushes the new state to every open room page over Server-Sent Events
(``GET .../events``). Each room page shows the case on screen in an embedded case page
(``/cases/{id}?meeting={meeting_id}``), where the chair presents and everyone else follows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.domain import Meeting
from collab.meeting_channels import MeetingChannels
from collab.meetings import MeetingRefused, may_record, may_sign_off, may_step, present_case, presents
from collab.store import Database
from collab.web.access import AccessControl, anonymised
from collab.web.api import describe
from collab.web.auth import client_address, current_user
from collab.web.errors import error
from collab.web.live import STREAM, Link, LiveLinks, LiveStream, credential
from collab.web.meeting_state import publish, room_state
from collab.web.meetings import audit_view, enter_meeting, find_meeting, meeting_form, off_agenda, refused
from collab.web.pages import case_summary, display_names
from collab.web.render import render

# Comment lines sent this often while nothing happens: a tab that has gone away without
# closing its connection is then noticed (the write fails) and leaves "in the room now".
HEARTBEAT_S = 15.0
# What a room page shows of a case besides its title, for those allowed to see each part.
SUMMARY_FIELDS = ("priority", "organisation", "specimen", "accession", "patient", "clinical_details")


async def room_data(request: Request, meeting: Meeting) -> dict[str, Any]:
    """The room as the signed-in person sees it: what they may do, each agenda case as far as
    they may see it (the server leaves out what they may not), and the meeting's live state."""
    db: Database = request.app.state.db
    access_control: AccessControl = request.app.state.access
    user = current_user(request)
    known = await display_names(db)
    view = "&view=anonymised" if anonymised(request) else ""
    cases = []
    for item in await db.meetings.agenda(meeting.id):
        entry: dict[str, Any] = {
            "case_id": item.case_id,
            "position": item.position,
            "planned_minutes": item.planned_minutes,
            "title": f"Case {item.case_id[:6]}",
            "frame": None,  # not for them to open
            "summary": None,
        }
        seen = await access_control.case(request, item.case_id)
        if seen is not None:
            case, access = seen
            slides = [s.id for s in await db.catalog.slides_of_case(case.id)]
            summary = case_summary(case, access, slides, known)
            entry |= {
                "title": summary["title"],
                "frame": f"/cases/{case.id}?meeting={meeting.id}{view}",
                "summary": {key: summary[key] for key in SUMMARY_FIELDS if summary.get(key)},
            }
        cases.append(entry)
    org = await db.catalog.org(meeting.org_id)
    return {
        "id": meeting.id,
        "name": meeting.name,
        "starts": meeting.starts,
        "organisation": org.name if org else None,
        "chair": known.get(meeting.chair),
        "coordinator": known.get(meeting.coordinator),
        "me": {
            "id": user.id,
            "may_step": may_step(user, meeting),
            "may_record": may_record(user, meeting),
            "may_sign_off": may_sign_off(user, meeting),
            "presents": presents(user, meeting),
        },
        "decisions": list(request.app.state.settings.decisions),
        "cases": cases,
        "state": await room_state(db, meeting),
    }


async def room_page(request: Request) -> Response:
    """``GET /meetings/{id}/room``: the live meeting room; opening it marks attendance."""
    meeting = await enter_meeting(request)
    if meeting is None:
        return error(404, "No such meeting.")
    return render(request, "meeting_room.html", room=await room_data(request, meeting))


async def room_json(request: Request) -> Response:
    """``GET /api/meetings/{id}/room``: the room page's JSON twin."""
    found = await find_meeting(request)
    if found is None:
        return error(404, "No such meeting.", api=True)
    await audit_view(request, found[0])
    return JSONResponse(await room_data(request, found[0]))


async def events(request: Request) -> Response:
    """``GET /meetings/{id}/events``: the meeting's state now and after every change, as
    Server-Sent Events (one JSON ``data`` line per state; comment lines as heartbeats)."""
    found = await find_meeting(request)
    if found is None:
        return error(404, "No such meeting.")
    meeting, _ = found
    user = current_user(request)
    app = request.app
    channels: MeetingChannels = app.state.meeting_channels
    # Being in the room marks attendance, and only the room page's EventSource says so: it asks
    # for text/event-stream, which a link or form from another site (a navigation, sent with our
    # SameSite=Lax cookie) cannot; the EventSource of another site's page gets no cookie at all.
    attends = "text/event-stream" in request.headers.get("accept", "")
    # Counted towards the person's cap, and ended with their sign-in (collab.web.live).
    live: LiveLinks = app.state.live
    link = Link(f"user:{user.id}", STREAM, credential(request), meeting_id=meeting.id)
    if (refused := await live.admit(link)) is not None:
        return error(*refused)

    async def stream() -> AsyncIterator[str]:
        listener = channels.join(meeting.id, user.id, user.display_name)
        link.attach(lambda code, reason: listener.woken.set())
        try:
            yield "retry: 2000\n\n"  # how soon the browser reconnects after a dropped link (ms)
            if attends:
                await app.state.db.meetings.mark_attended(meeting.id, user.id)
            await publish(app, meeting)  # the newcomer gets the state; the others learn who came
            while True:
                try:
                    await asyncio.wait_for(listener.woken.wait(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                listener.woken.clear()
                if link.ended is not None:
                    return  # signed out: the page's next attempt to reconnect is refused
                message = channels.message(meeting.id)
                if message is not None:
                    yield f"data: {json.dumps(message)}\n\n"
        finally:
            # The page closed (Starlette cancels this stream on disconnect) or the write failed.
            channels.leave(meeting.id, listener)

    return LiveStream(
        live,
        link,
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def current_form(request: Request) -> Response:
    """``POST /meetings/{id}/current``: the chair or coordinator puts an agenda case on screen for
    everyone (field ``case``; empty: no case, the clock stops). Answers with the new state."""
    db: Database = request.app.state.db
    posted = await meeting_form(request)
    if isinstance(posted, Response):
        return posted
    meeting, form = posted
    case_id = str(form.get("case", "")).strip() or None
    if case_id is not None and (refusal := await off_agenda(db, meeting, case_id)) is not None:
        return refusal
    channels: MeetingChannels = request.app.state.meeting_channels
    try:
        # One step at a time, each followed by its own state, so pages never go back in time.
        async with channels.lock(meeting.id):
            await present_case(db, meeting, case_id, by=current_user(request), client=client_address(request))
            state = await room_state(db, meeting)
            channels.publish(meeting.id, state)
    except MeetingRefused as exc:
        return refused(exc)
    return JSONResponse(state)


describe(
    "/api/meetings/{meeting_id}/room",
    "get",
    "The meeting room's state: agenda, current case, outcomes so far",
    tag="meetings",
)

routes = [
    Route("/meetings/{meeting_id}/room", room_page),
    Route("/api/meetings/{meeting_id}/room", room_json),
    Route("/meetings/{meeting_id}/events", events),
    Route("/meetings/{meeting_id}/current", current_form, methods=["POST"]),
]
