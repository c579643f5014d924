"""The student side of teaching sessions: joining with a code, who is asking, the session page
and its JSON twin, anonymised slides, quiz answers, and the session's websocket.

Every route here answers only the session's educator and its participants (students who
joined it); anyone else gets the same 404 as for a session that does not exist. Students hold
a participant cookie valid for that one session; it opens nothing else (every other route
treats them as a stranger). What a student receives is built from aliases and copies: no
accession, patient detail, case or slide id, file path, label or macro image.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from collab.domain import User, case_access
from collab.security import new_token, sign, token_hash, unsign
from collab.slides.deepzoom import DeepZoomSlide
from collab.slides.library import SlideLibrary, SlideNotFound
from collab.slides.reader import SlideError
from collab.store import Database
from collab.store.database import now_iso
from collab.store.teaching import Participant, TeachingSession, TeachingSlide
from collab.sync.presence import presence_user
from collab.teaching import TeachingRefused, clean_display_name, normalise_code
from collab.throttle import JoinThrottle
from collab.web.auth import client_address
from collab.web.errors import error
from collab.web.forms import MAX_PUBLIC_FORM_BYTES, read_form
from collab.web.live import SOCKET, Credential, Link, credential, guest_expires, refuse
from collab.web.render import render
from collab.web.slides import MEDIA_TYPES, TILE_NAME, _image
from collab.web.sync import Connection, serve_link

PARTICIPANT_COOKIE = "collab_teach"
JOIN_CSRF_COOKIE = "collab_join_csrf"
# Lookups remembered this long, so that a class's tiles do not each cost queries.
CACHE_S = 5.0
NO_SESSION = "No such teaching session. Ask your educator for the link or the code."
SESSION_ENDED = "This teaching session has ended."
ALIAS = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Attendee:
    """Someone in a session: its educator, or a participant (a student)."""

    session: TeachingSession
    user: User  # for a participant: a stand-in whose id is the participant's (negative) peer id
    participant: Participant | None
    csrf: str

    @property
    def educator(self) -> bool:
        return self.participant is None


class Classroom:
    """Resolves participant cookies, sessions and slide aliases, remembering answers briefly."""

    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self.secret = secret
        self._participants: dict[str, tuple[float, Participant | None, datetime | None]] = {}
        self._sessions: dict[str, tuple[float, TeachingSession | None]] = {}
        self._slides: dict[str, tuple[float, dict[str, TeachingSlide]]] = {}

    async def session(self, session_id: str) -> TeachingSession | None:
        """The session; it counts as ended once its educator may no longer see one of its cases."""
        hit = self._sessions.get(session_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        found = await self.db.teaching.session(session_id)
        if found is not None and found.open and not await self._educator_sees_its_cases(found):
            found = replace(found, closed=now_iso())
        if len(self._sessions) > 10_000:
            self._sessions.clear()
        self._sessions[session_id] = (time.monotonic() + CACHE_S, found)
        return found

    async def _educator_sees_its_cases(self, session: TeachingSession) -> bool:
        """Whether the educator may still see every case of the session. A session is built from
        cases its educator could see (a case of another trust, say, through a share); when that
        ends, so does the session: its slides, copies of the cases' annotations and quiz stand on it."""
        educator = await self.db.people.user(session.educator)
        if educator is None:
            return False
        for case_id in await self.db.teaching.case_ids(session.id):
            case = await self.db.catalog.case(case_id)
            if case is None or case_access(educator, case, await self.db.catalog.shares(case_id)) is None:
                return False
        return True

    def forget(self, session_id: str) -> None:
        """After the session changed (closed, pen passed)."""
        self._sessions.pop(session_id, None)

    def forget_all(self) -> None:
        """After a change that may end sessions or places (a share, a change by another process)."""
        self._sessions.clear()
        self._participants.clear()

    async def slides(self, session_id: str) -> dict[str, TeachingSlide]:
        """The session's slides by alias (they never change)."""
        hit = self._slides.get(session_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        found = {s.alias: s for s in await self.db.teaching.slides(session_id)}
        if len(self._slides) > 1000:
            self._slides.clear()
        self._slides[session_id] = (time.monotonic() + 60 * CACHE_S, found)
        return found

    async def participant(self, cookie: str | None) -> tuple[Participant, str] | None:
        """The participant a cookie names, and their CSRF token; None once their place has run
        out (collab.web.live.GUEST_LIFETIME from joining, whatever the cookie says)."""
        token = unsign(self.secret, cookie) if cookie else None
        if token is None:
            return None
        key = token_hash(token)
        hit = self._participants.get(key)
        if hit and hit[0] > time.monotonic():
            found, expires = hit[1], hit[2]
        else:
            found = await self.db.teaching.participant_by_token(key)
            joined = await self.db.teaching.joined(found.id) if found else None
            expires = guest_expires(joined) if joined else None
            if len(self._participants) > 50_000:
                self._participants.clear()
            self._participants[key] = (time.monotonic() + CACHE_S, found, expires)
        if found is None or expires is None or expires <= datetime.now(UTC):
            return None
        return found, self.csrf(token)

    def csrf(self, token: str) -> str:
        """A participant's CSRF token: derived from their secret, so nothing more is stored."""
        return hashlib.sha256(sign(self.secret, "csrf:" + token).encode()).hexdigest()[:32]

    def cookie(self, token: str) -> str:
        return sign(self.secret, token)


async def attendee(conn: HTTPConnection, session_id: str | None = None) -> Attendee | None:
    """Who asks about the session in the path (or ``session_id``): None for anyone not in it."""
    classroom: Classroom = conn.app.state.classroom
    session = await classroom.session(session_id or conn.path_params["session_id"])
    if session is None:
        return None
    user: User | None = conn.scope.get("user")
    if user is not None and user.id == session.educator:
        return Attendee(session, user, None, str(conn.scope.get("csrf") or ""))
    found = await classroom.participant(conn.cookies.get(PARTICIPANT_COOKIE))
    if found is None or found[0].session_id != session.id:
        return None
    participant, csrf = found
    stand_in = User(participant.peer_id, f"student-{participant.id}", participant.display_name, 0, "student")
    return Attendee(session, stand_in, participant, csrf)


def checked_json_csrf(request: Request, who: Attendee) -> bool:
    """JSON posts carry the page's CSRF token in ``X-CSRF-Token``."""
    return bool(who.csrf) and request.headers.get("x-csrf-token") == who.csrf


# -- joining ------------------------------------------------------------------


async def join_page(request: Request) -> Response:
    """``GET /join`` and ``GET /join/{code}``: the form a student fills in (code, display name)."""
    return _join_form(request, code=normalise_code(request.path_params.get("code", "")))


def _join_form(
    request: Request, *, code: str = "", name: str = "", message: str = "", status: int = 200
) -> Response:
    csrf = request.cookies.get(JOIN_CSRF_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", csrf):
        csrf = new_token()
    user: User | None = request.scope.get("user")
    if not name and user is not None and user.role == "student":
        name = user.display_name
    response = render(
        request, "join.html", status=status, csrf=csrf, code=code, display_name=name, message=message
    )
    secure = request.url.scheme == "https"
    response.set_cookie(JOIN_CSRF_COOKIE, csrf, httponly=True, samesite="lax", secure=secure)
    return response


async def join(request: Request) -> Response:
    """``POST /join``: become a participant of the open session with that code."""
    db: Database = request.app.state.db
    classroom: Classroom = request.app.state.classroom
    throttle: JoinThrottle = request.app.state.join_throttle
    form = await read_form(request, MAX_PUBLIC_FORM_BYTES)
    if isinstance(form, Response):
        return form
    code = normalise_code(str(form.get("code", "")))
    raw_name = str(form.get("name", ""))[:1000]
    csrf = request.cookies.get(JOIN_CSRF_COOKIE)
    if not csrf or form.get("csrf") != csrf:
        return _join_form(
            request, code=code, name=raw_name, status=403, message="The form expired. Try again."
        )
    client = client_address(request)
    # Checked before the code, so that a held guesser learns nothing from the answer.
    wait = throttle.blocked_for(client)
    if wait:
        response = _join_form(
            request,
            code=code,
            name=raw_name,
            status=429,
            message=f"Too many wrong codes. Try again in {wait} seconds, or ask your educator for the link.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    session = await db.teaching.open_session_by_code(code) if code else None
    if session is None and code:
        held = throttle.failed(client)
        await db.audit.record(
            "teaching join failed",
            client=client,
            detail="a code of no open session" + (f"; this address held for {held} s" if held else ""),
        )
    if session is None:
        return _join_form(
            request,
            code=code,
            name=raw_name,
            status=404,
            message="No open teaching session has that code. Check it with your educator.",
        )
    try:
        name = clean_display_name(raw_name)
    except TeachingRefused as exc:
        return _join_form(request, code=code, name=raw_name, status=400, message=str(exc))
    user: User | None = request.scope.get("user")
    token = new_token()
    participant = await db.teaching.add_participant(
        session.id, name, token_hash(token), user.id if user and user.role == "student" else None
    )
    await db.audit.record(
        "teaching session joined",
        user=user if user and user.role == "student" else None,
        username=None if user and user.role == "student" else f"guest {participant.id}",
        client=client_address(request),
        detail=f"session {session.id}: participant {participant.id} as {name!r}",
    )
    response = RedirectResponse(f"/teach/{session.id}", status_code=303)
    response.set_cookie(
        PARTICIPANT_COOKIE,
        classroom.cookie(token),
        max_age=12 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(JOIN_CSRF_COOKIE)
    return response


# -- the session page and its JSON twin -----------------------------------------


async def session_data(request: HTTPConnection, who: Attendee) -> dict[str, Any]:
    """What the page and its JSON twin show: titles, aliases and sizes, never what they stand for."""
    classroom: Classroom = request.app.state.classroom
    slides = list((await classroom.slides(who.session.id)).values())
    items: dict[int, dict[str, Any]] = {}
    for s in slides:
        items.setdefault(s.item, {"title": f"Case {s.item}", "slides": []})["slides"].append(
            {
                "id": s.alias,
                "title": f"Case {s.item} · slide {s.number}",
                "width": s.width,
                "height": s.height,
                "dzi": f"/teach/{who.session.id}/slides/{s.alias}.dzi",
                "info": f"/teach/{who.session.id}/slides/{s.alias}/info.json",
            }
        )
    return {
        "sessionId": who.session.id,
        "title": who.session.title,
        "open": who.session.open,
        "role": "educator" if who.educator else "student",
        "user": {
            "id": who.user.id,
            "name": who.user.display_name,
            "role": "educator" if who.educator else "student",
        },
        "educator": {"id": who.session.educator},
        "rights": {"contribute": who.educator or who.session.pen == -who.user.id, "moderate": who.educator},
        "items": [items[n] for n in sorted(items)],
        "slides": [slide for n in sorted(items) for slide in items[n]["slides"]],
        "csrf": who.csrf,
    }


async def session_page(request: Request) -> Response:
    """``GET /teach/{session_id}``: the live session, for the educator and the students."""
    who = await attendee(request)
    if who is None:
        return error(404, NO_SESSION)
    if not who.session.open:
        return render(request, "teach_closed.html", status=410, title=who.session.title, user=None)
    data = await session_data(request, who)
    extra: dict[str, Any] = {}
    if who.educator:
        extra["join_url"] = f"{request.base_url}join/{who.session.code}"
        extra["code"] = who.session.code
    # ``user=None``: students' pages carry no account bar (there is no account to show).
    return render(request, "teach.html", status=200, data=data, educator=who.educator, user=None, **extra)


async def session_json(request: Request) -> Response:
    """``GET /teach/{session_id}/state.json``: the page's JSON twin."""
    who = await attendee(request)
    if who is None:
        return error(404, NO_SESSION, api=True)
    if not who.session.open:
        return error(410, SESSION_ENDED, api=True)
    return JSONResponse(await session_data(request, who))


# -- anonymised slides ------------------------------------------------------------


async def _slide(request: Request) -> tuple[Attendee, TeachingSlide, DeepZoomSlide] | Response:
    """Who asks, the session's slide under that alias, and the slide opened (else the refusal)."""
    who = await attendee(request)
    alias = request.path_params["alias"]
    if who is None:
        return error(404, NO_SESSION)
    if not who.session.open:
        return error(410, SESSION_ENDED)
    found = (
        (await request.app.state.classroom.slides(who.session.id)).get(alias)
        if ALIAS.fullmatch(alias)
        else None
    )
    if found is None:
        return error(404, "No such slide in this session.")
    library: SlideLibrary = request.app.state.slides
    try:
        return who, found, await library.get(found.slide_id)
    except SlideNotFound:
        return error(404, "No such slide in this session.")
    except SlideError:  # the reason may name the file: students get none of it
        return error(503, "This slide cannot be read just now.")


def _etag(session_id: str, etag: str) -> str:
    """The slide's ETag re-hashed for the session: the original carries the real slide id."""
    return '"' + hashlib.sha256(f"{session_id}:{etag}".encode()).hexdigest()[:32] + '"'


async def slide_dzi(request: Request) -> Response:
    """``GET /teach/{session_id}/slides/{alias}.dzi``"""
    found = await _slide(request)
    if isinstance(found, Response):
        return found
    _, _, slide = found
    return Response(slide.dzi(), media_type="application/xml", headers={"Cache-Control": "private, no-cache"})


async def slide_info(request: Request) -> Response:
    """``GET /teach/{session_id}/slides/{alias}/info.json``: pixel size and objective only."""
    found = await _slide(request)
    if isinstance(found, Response):
        return found
    _, alias, slide = found
    props = slide.reader.properties
    return JSONResponse(
        {
            "id": alias.alias,
            "width": slide.width,
            "height": slide.height,
            "mpp_x": props.mpp_x,
            "mpp_y": props.mpp_y,
            "objective_power": props.objective_power,
        }
    )


async def slide_tile(request: Request) -> Response:
    """``GET /teach/{session_id}/slides/{alias}_files/{level}/{col}_{row}.{jpeg|png}``: the
    slide's own tile code path and caches, under an ETag that does not name the slide."""
    level_text = request.path_params["level"]
    match = TILE_NAME.fullmatch(request.path_params["tile"])
    if not level_text.isdigit() or len(level_text) > 9 or match is None:
        return error(404, "No such tile: the address must be {level}/{col}_{row}.jpeg or .png.")
    z_level, t_col, t_row, fmt = int(level_text), int(match[1]), int(match[2]), match[3]
    found = await _slide(request)
    if isinstance(found, Response):
        return found
    who, _, slide = found
    if not slide.geometry.has_tile(z_level, t_col, t_row):
        return error(404, "No such tile: the address is outside the slide.")
    response = await _image(
        request,
        _etag(who.session.id, slide.tile_etag(z_level, t_col, t_row, fmt)),
        MEDIA_TYPES[fmt],
        request.app.state.slides.tile_render(slide, z_level, t_col, t_row, fmt),
        slide.tile_key(z_level, t_col, t_row, fmt),
    )
    if response.status_code == 503:  # its message may name the file
        return error(503, "This part of the slide cannot be read just now.")
    return response


# -- the live room ----------------------------------------------------------------


async def session_socket(websocket: WebSocket) -> None:
    """``WS /ws/teaching/{session_id}``: the session's y-websocket room. The educator writes;
    students read, except the one holding the pen. Refused before any byte for anyone else."""
    who = await attendee(websocket)
    if who is None:
        await websocket.close(code=4404, reason="no such teaching session")
        return
    if not who.session.open:
        await refuse(websocket, 410, SESSION_ENDED)
        return
    if who.participant is not None:
        # A guest's place is their credential, and their caps their own (not their browser's user's).
        place = str(who.participant.id)
        link = Link(f"guest:{place}", SOCKET, Credential("guest", place), teaching_id=who.session.id)
    else:
        link = Link(f"user:{who.user.id}", SOCKET, credential(websocket), teaching_id=who.session.id)
    pen = who.participant is not None and who.session.pen == who.participant.id
    # Named in presence as the page names them (``session_data``): a student by their peer id.
    role = "educator" if who.educator else "student"
    identity = presence_user(who.user.id, who.user.display_name, role, None)
    peer = Connection(websocket, who.user, who.educator or pen, who.educator, identity=identity)
    await serve_link(websocket, link, peer, websocket.app.state.teaching_rooms)


routes = [
    Route("/join", join_page, methods=["GET"]),
    Route("/join", join, methods=["POST"]),
    Route("/join/{code}", join_page, methods=["GET"]),
    Route("/teach/{session_id}", session_page),
    Route("/teach/{session_id}/state.json", session_json),
    Route("/teach/{session_id}/slides/{alias}.dzi", slide_dzi),
    Route("/teach/{session_id}/slides/{alias}_files/{level}/{tile}", slide_tile),
    Route("/teach/{session_id}/slides/{alias}/info.json", slide_info),
    WebSocketRoute("/ws/teaching/{session_id}", session_socket),
]
