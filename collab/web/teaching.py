"""The educator's side of teaching sessions: the list and the form that makes one, closing,
passing the pen, and the quiz (ask, live count, reveal); and a student's quiz answer.

Quiz answers are posted privately (``POST /teach/{id}/quiz/answer``) and kept by the server;
nobody sees another's point until the educator reveals them all at once, when the server
writes them into the session document's ``quiz`` map for everyone.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pycrdt import Doc, Map
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.domain import Case, case_access
from collab.store import Database
from collab.sync.room import Room
from collab.sync.rooms import Rooms
from collab.teaching import MAX_CASES, TeachingRefused, clean_question, create_session, may_teach
from collab.web.auth import checked_form, client_address, current_user
from collab.web.classroom import Attendee, Classroom, attendee, checked_json_csrf
from collab.web.errors import error
from collab.web.forms import MAX_JSON_BYTES, read_body
from collab.web.render import render
from collab.web.sync import Connection

NO_SESSION = "No such teaching session."


async def _teachable_cases(request: Request) -> list[tuple[Case, int]]:
    """Cases the signed-in educator can see, with their slide counts."""
    db: Database = request.app.state.db
    user = current_user(request)
    found = []
    for case in await db.catalog.visible_cases(user.org_id, user.id, own_org=True):
        if case_access(user, case, await db.catalog.shares(case.id)) is not None:
            found.append((case, len(await db.catalog.slides_of_case(case.id))))
    return found


async def teaching_page(request: Request, *, message: str = "", status: int = 200) -> Response:
    """``GET /teaching``: an educator's sessions and the form for a new one."""
    user = current_user(request)
    if not may_teach(user):
        return error(403, "Only pathologists and administrators run teaching sessions.")
    db: Database = request.app.state.db
    sessions = await db.teaching.sessions_of(user.id)
    return render(
        request,
        "teaching.html",
        status=status,
        sessions=sessions,
        cases=await _teachable_cases(request),
        base=str(request.base_url),
        message=message,
    )


async def create(request: Request) -> Response:
    """``POST /teaching``: make a session from the chosen cases (in the list's order)."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    db: Database = request.app.state.db
    user = current_user(request)
    cases = []
    # One more than a session holds is enough for create_session to refuse the list.
    for case_id in form.getlist("case")[: MAX_CASES + 1]:
        case = await db.catalog.case(str(case_id))
        # A case one may not see is answered exactly as one that does not exist: the same
        # words, naming nothing (its accession would tell that it exists, and what it is).
        if case is None or case_access(user, case, await db.catalog.shares(case.id)) is None:
            message = "One of the chosen cases is not one you can see: choose from the list."
            return await teaching_page(request, message=message, status=400)
        cases.append(case)
    rooms: Rooms = request.app.state.rooms
    try:
        session = await create_session(
            db,
            str(form.get("title", "")),
            educator=user,
            cases=cases,
            case_document=rooms.document,
            client=client_address(request),
        )
    except TeachingRefused as exc:
        return await teaching_page(request, message=str(exc), status=400)
    return RedirectResponse(f"/teach/{session.id}", status_code=303)


async def _educator(request: Request) -> Attendee | Response:
    who = await attendee(request)
    if who is None:
        return error(404, NO_SESSION, request)
    if not who.educator:
        return error(403, "Only the educator does that.", request)
    if not who.session.open:
        return error(409, "This teaching session has ended.", request)
    return who


async def close(request: Request) -> Response:
    """``POST /teach/{session_id}/close`` (form): end the session; students' links close."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    who = await _educator(request)
    if isinstance(who, Response):
        return who
    db: Database = request.app.state.db
    await db.teaching.close(who.session.id)
    request.app.state.classroom.forget(who.session.id)
    await db.audit.record(
        "teaching session closed",
        user=who.user,
        client=client_address(request),
        detail=f"session {who.session.id}",
    )
    room = request.app.state.teaching_rooms.open_room(who.session.id)
    if room is not None:
        for peer in list(room.peers):
            if isinstance(peer, Connection):
                peer.close(4410, "the teaching session has ended")
    return RedirectResponse("/teaching", status_code=303)


async def attendee_json(request: Request) -> tuple[Attendee, dict[str, Any]] | Response:
    """The educator's or a participant's JSON body, if it carries the page's CSRF token."""
    who = await attendee(request)
    if who is None:
        return error(404, NO_SESSION, api=True)
    if not checked_json_csrf(request, who):
        return error(403, "The page expired. Reload it and try again.", api=True)
    if not who.session.open:
        return error(409, "This teaching session has ended.", api=True)
    raw = await read_body(request, MAX_JSON_BYTES)
    if isinstance(raw, Response):
        return raw
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return error(400, "The body must be JSON.", api=True)
    if not isinstance(body, dict):
        return error(400, "The body must be a JSON object.", api=True)
    return who, body


async def _in_room(request: Request, session_id: str, act: Callable[[Room], Any]) -> Any:
    """Run ``act`` (plain or async) on the session's room, loading it (and unloading it after)
    if nobody is in it."""
    rooms: Rooms = request.app.state.teaching_rooms
    room = await rooms.join(session_id)
    try:
        result = act(room)
        return await result if inspect.isawaitable(result) else result
    finally:
        await rooms.left(room)


async def pen(request: Request) -> Response:
    """``POST /teach/{session_id}/pen`` ``{"participant": id | null}``: give the pen to one
    student (their live connection may now draw, as themselves) or take it back."""
    checked = await attendee_json(request)
    if isinstance(checked, Response):
        return checked
    who, body = checked
    if not who.educator:
        return error(403, "Only the educator passes the pen.", api=True)
    db: Database = request.app.state.db
    raw = body.get("participant")
    holder = None
    if raw is not None:
        holder = await db.teaching.participant(who.session.id, raw) if isinstance(raw, int) else None
        if holder is None:
            return error(404, "No such student in this session.", api=True)
    await db.teaching.set_pen(who.session.id, holder.id if holder else None)
    classroom: Classroom = request.app.state.classroom
    classroom.forget(who.session.id)

    async def hand_over(room: Room) -> None:
        for peer in list(room.peers):
            if not peer.moderate:
                peer.contribute = holder is not None and peer.user_id == holder.peer_id

        def write(doc: Doc[Any]) -> None:
            session = doc.get("session", type=Map)
            session["pen"] = holder.peer_id if holder else None
            session["penName"] = holder.display_name if holder else None

        room.change(write)

    await _in_room(request, who.session.id, hand_over)
    await db.audit.record(
        "teaching pen passed",
        user=who.user,
        client=client_address(request),
        detail=f"session {who.session.id}: "
        + (f"to participant {holder.id} ({holder.display_name!r})" if holder else "taken back"),
    )
    return JSONResponse(
        {"pen": holder.peer_id if holder else None, "name": holder.display_name if holder else None}
    )


def _quiz(doc: Doc[Any]) -> dict[str, Any]:
    return doc.get("quiz", type=Map).to_py() or {}


async def ask(request: Request) -> Response:
    """``POST /teach/{session_id}/quiz`` ``{"question": text, "slide": alias}``: ask everyone."""
    checked = await attendee_json(request)
    if isinstance(checked, Response):
        return checked
    who, body = checked
    if not who.educator:
        return error(403, "Only the educator asks questions.", api=True)
    try:
        question = clean_question(str(body.get("question", "")))
    except TeachingRefused as exc:
        return error(400, str(exc), api=True)
    slides = await request.app.state.classroom.slides(who.session.id)
    if body.get("slide") not in slides:
        return error(400, "Ask on one of the session's slides.", api=True)

    async def write(room: Room) -> int:
        number = int(_quiz(room.doc).get("id") or 0) + 1

        def change(doc: Doc[Any]) -> None:
            quiz = doc.get("quiz", type=Map)
            quiz.clear()
            quiz.update(
                {
                    "id": number,
                    "question": question,
                    "slide": body["slide"],
                    "state": "open",
                    "asked": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )

        room.change(change)
        return number

    number = await _in_room(request, who.session.id, write)
    return JSONResponse({"id": number, "question": question, "slide": body["slide"], "state": "open"})


async def quiz_status(request: Request) -> Response:
    """``GET /teach/{session_id}/quiz``: the question and how many have answered (educator only)."""
    who = await attendee(request)
    if who is None:
        return error(404, NO_SESSION, api=True)
    if not who.educator:
        return error(403, "Only the educator sees the count.", api=True)
    quiz = await _in_room(request, who.session.id, lambda room: _quiz(room.doc))
    count = (
        await request.app.state.db.teaching.answer_count(who.session.id, quiz["id"]) if quiz.get("id") else 0
    )
    return JSONResponse(
        {"id": quiz.get("id"), "question": quiz.get("question"), "state": quiz.get("state"), "answers": count}
    )


async def answer(request: Request) -> Response:
    """``POST /teach/{session_id}/quiz/answer`` ``{"question": id, "x": l0_x, "y": l0_y}``: a
    student's point, seen by nobody until the reveal; answering again replaces it."""
    checked = await attendee_json(request)
    if isinstance(checked, Response):
        return checked
    who, body = checked
    if who.participant is None:
        return error(403, "The educator does not answer their own question.", api=True)
    x, y = body.get("x"), body.get("y")
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (x, y)):
        return error(400, "x and y must be numbers (level-0 pixels of the question's slide).", api=True)
    quiz = await _in_room(request, who.session.id, lambda room: _quiz(room.doc))
    if not quiz.get("id") or quiz.get("id") != body.get("question"):
        return error(409, "That question is no longer being asked.", api=True)
    if quiz.get("state") != "open":
        return error(409, "The answers have been revealed: answering is closed.", api=True)
    slide = (await request.app.state.classroom.slides(who.session.id)).get(quiz["slide"])
    assert slide is not None
    if not (0 <= x <= slide.width and 0 <= y <= slide.height):  # type: ignore[operator]
        return error(400, "The point is outside the slide.", api=True)
    await request.app.state.db.teaching.answer(
        who.session.id, quiz["id"], who.participant.id, slide.alias, x, y
    )
    return JSONResponse({"question": quiz["id"], "x": x, "y": y})


async def reveal(request: Request) -> Response:
    """``POST /teach/{session_id}/quiz/reveal`` ``{"names": false}``: show every answer at once,
    anonymous dots unless ``names``."""
    checked = await attendee_json(request)
    if isinstance(checked, Response):
        return checked
    who, body = checked
    if not who.educator:
        return error(403, "Only the educator reveals the answers.", api=True)
    names = body.get("names") is True
    db: Database = request.app.state.db

    async def write(room: Room) -> int | None:
        quiz = _quiz(room.doc)
        if not quiz.get("id"):
            return None
        answers = await db.teaching.answers(who.session.id, int(quiz["id"]))
        dots = [{"x": a.x, "y": a.y} | ({"name": a.display_name} if names else {}) for a in answers]

        def change(doc: Doc[Any]) -> None:
            target = doc.get("quiz", type=Map)
            target["answers"] = dots
            target["count"] = len(dots)
            target["state"] = "revealed"

        room.change(change)
        return len(dots)

    count = await _in_room(request, who.session.id, write)
    if count is None:
        return error(409, "No question has been asked.", api=True)
    await db.audit.record(
        "teaching quiz revealed",
        user=who.user,
        client=client_address(request),
        detail=f"session {who.session.id}: {count} answers" + (" with names" if names else ""),
    )
    return JSONResponse({"revealed": count})


async def clear(request: Request) -> Response:
    """``POST /teach/{session_id}/quiz/clear``: take the question (and any scatter) off the slide."""
    checked = await attendee_json(request)
    if isinstance(checked, Response):
        return checked
    who, _ = checked
    if not who.educator:
        return error(403, "Only the educator clears the question.", api=True)

    async def write(room: Room) -> None:
        number = _quiz(room.doc).get("id")

        def change(doc: Doc[Any]) -> None:
            quiz = doc.get("quiz", type=Map)
            quiz.clear()
            if number:
                quiz["id"] = number  # numbers keep counting up: old answers never match a new question

        room.change(change)

    await _in_room(request, who.session.id, write)
    return JSONResponse({"cleared": True})


routes = [
    Route("/teaching", teaching_page, methods=["GET"]),
    Route("/teaching", create, methods=["POST"]),
    Route("/teach/{session_id}/close", close, methods=["POST"]),
    Route("/teach/{session_id}/pen", pen, methods=["POST"]),
    Route("/teach/{session_id}/quiz", quiz_status, methods=["GET"]),
    Route("/teach/{session_id}/quiz", ask, methods=["POST"]),
    Route("/teach/{session_id}/quiz/answer", answer, methods=["POST"]),
    Route("/teach/{session_id}/quiz/reveal", reveal, methods=["POST"]),
    Route("/teach/{session_id}/quiz/clear", clear, methods=["POST"]),
]
