"""The JSON twins of running a meeting: recording an outcome, signing it off, closing the
meeting. The same acts as the meeting page's forms (collab.web.meetings), the same audit."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.domain import Meeting
from collab.meetings import Invalid, MeetingRefused, NotAllowed
from collab.web.api import describe, read_json
from collab.web.errors import problem
from collab.web.meetings import close_act, find_meeting, outcome_act, sign_off_act


def _refused(exc: MeetingRefused) -> Response:
    status = 403 if isinstance(exc, NotAllowed) else 422 if isinstance(exc, Invalid) else 409
    return problem(status, str(exc))


def _unknown(body: dict[str, Any], allowed: set[str]) -> Response | None:
    extra = sorted(set(body) - allowed)
    if not extra:
        return None
    return problem(
        422,
        f"Unknown fields: {', '.join(extra)}."
        + (f" Send {', '.join(sorted(allowed))}." if allowed else " Send {}."),
    )


async def _meeting(request: Request) -> Meeting | Response:
    found = await find_meeting(request)
    return found[0] if found else problem(404, "No such meeting.")


async def _on_agenda(request: Request, meeting: Meeting) -> str | Response:
    case_id: str = request.path_params["case_id"]
    agenda = await request.app.state.db.meetings.agenda(meeting.id)
    if case_id not in {item.case_id for item in agenda}:
        return problem(404, "That case is not on this meeting's agenda.")
    return case_id


async def outcome_json(request: Request) -> Response:
    """``POST /api/meetings/{id}/cases/{case_id}/outcome`` ``{"decisions": [...], "notes": "..."}``"""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    if (unknown := _unknown(body, {"decisions", "notes"})) is not None:
        return unknown
    meeting = await _meeting(request)
    if isinstance(meeting, Response):
        return meeting
    case_id = await _on_agenda(request, meeting)
    if isinstance(case_id, Response):
        return case_id
    decisions, notes = body.get("decisions"), body.get("notes", "")
    if not isinstance(decisions, list) or not all(isinstance(d, str) for d in decisions):
        return problem(422, 'decisions is a list of the meeting\'s decisions, e.g. ["surgery"].')
    if not isinstance(notes, str):
        return problem(422, "notes is text.")
    try:
        await outcome_act(request, meeting, case_id, decisions, notes)
    except MeetingRefused as exc:
        return _refused(exc)
    return JSONResponse({"recorded": True, "decisions": list(dict.fromkeys(d.strip() for d in decisions))})


async def sign_off_json(request: Request) -> Response:
    """``POST /api/meetings/{id}/cases/{case_id}/sign-off``: the chair; final afterwards."""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    if (unknown := _unknown(body, set())) is not None:
        return unknown
    meeting = await _meeting(request)
    if isinstance(meeting, Response):
        return meeting
    case_id = await _on_agenda(request, meeting)
    if isinstance(case_id, Response):
        return case_id
    try:
        await sign_off_act(request, meeting, case_id)
    except MeetingRefused as exc:
        return _refused(exc)
    return JSONResponse({"signed_off": True})


async def close_json(request: Request) -> Response:
    """``POST /api/meetings/{id}/close``: the chair or coordinator; outside access ends."""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    if (unknown := _unknown(body, set())) is not None:
        return unknown
    meeting = await _meeting(request)
    if isinstance(meeting, Response):
        return meeting
    try:
        await close_act(request, meeting)
    except MeetingRefused as exc:
        return _refused(exc)
    return JSONResponse({"closed": True})


OUTCOME: dict[str, Any] = {
    "type": "object",
    "required": ["decisions"],
    "properties": {
        "decisions": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "notes": {"type": "string", "maxLength": 20000},
    },
}
EMPTY: dict[str, Any] = {"type": "object", "properties": {}}

describe(
    "/api/meetings/{meeting_id}/cases/{case_id}/outcome",
    "post",
    "Record a case's outcome: one or more of the meeting's decisions, and notes (coordinator or chair)",
    body=OUTCOME,
    response={"type": "object", "properties": {"recorded": {"const": True}, "decisions": {"type": "array"}}},
    tag="meetings",
)
describe(
    "/api/meetings/{meeting_id}/cases/{case_id}/sign-off",
    "post",
    "Sign a case's outcome off (the chair); it is final afterwards. Body: {}",
    body=EMPTY,
    response={"type": "object", "properties": {"signed_off": {"const": True}}},
    tag="meetings",
)
describe(
    "/api/meetings/{meeting_id}/close",
    "post",
    "Close the meeting (chair or coordinator): other trusts' participants lose access to its cases. Body: {}",
    body=EMPTY,
    response={"type": "object", "properties": {"closed": {"const": True}}},
    tag="meetings",
)

routes = [
    Route("/api/meetings/{meeting_id}/cases/{case_id}/outcome", outcome_json, methods=["POST"]),
    Route("/api/meetings/{meeting_id}/cases/{case_id}/sign-off", sign_off_json, methods=["POST"]),
    Route("/api/meetings/{meeting_id}/close", close_json, methods=["POST"]),
]
