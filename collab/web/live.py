"""Every open websocket and event stream, and the right it stands on: when the right ends, so does
the connection.

Rights are checked when a connection opens; without this, a tab left open would keep reading and
writing after its person signed out, their session expired, a share ended or was made read-only.
Each connection is a ``Link``: whose it is (for the caps), which credential opened it (a session,
an API token, a teaching guest's place) and what it reaches (a case, a teaching session, a
meeting's events). Changes made here (sign-out, shares, opinions, meetings) re-check at once;
changes made by another process (the command line) are noticed by ``watch``, which polls
``Database.data_version`` (SQLite's moves only when another connection commits). Every check reads the
database: the identity and access caches may lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import HTTPConnection
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from collab.domain import Case, Share, User, case_access, may_moderate
from collab.meetings import takes_part
from collab.security import token_hash
from collab.store import Database
from collab.web.errors import error

if TYPE_CHECKING:
    from collab.web.access import AccessControl
    from collab.web.classroom import Classroom

log = logging.getLogger("collab.live")

# Open websockets (case and teaching rooms) per person: a few tabs of a case, the case page
# embedded in the meeting room, a teaching session, with room to spare. One token once held
# 3,000: each costs the server memory and a share of every fan-out.
MAX_SOCKETS_PER_PERSON = 20
# Open meeting-room event streams per person: one per open room page; a person is in one
# meeting at a time, perhaps on two screens. Each holds a connection and a task.
MAX_STREAMS_PER_PERSON = 10
# How often the database is asked whether another process changed it, and expiries are looked
# at: a change reaches open connections within about this long.
WATCH_INTERVAL_S = 0.5
# A teaching guest's place lasts as long as a signed-in session (and as the guest's cookie).
GUEST_LIFETIME = timedelta(hours=12)

SOCKET = "websocket"
STREAM = "event stream"
# Close codes and reasons (docs/sync.md); the viewer shows "Your access to this case has ended"
# on 4403 and reloads on 4409, to continue read-only.
ENDED = 4403
RIGHTS_CHANGED = 4409
TEACHING_ENDED = 4410
SIGNED_OUT = "access ended: signed out"
CASE_ENDED = "access to this case has ended"
READ_ONLY_NOW = "your access to this case is now read-only: reload to continue"
SESSION_OVER = "the teaching session has ended"
MEETING_ENDED = "access to this meeting has ended"


@dataclass(frozen=True)
class Credential:
    """What opened a connection: ``kind`` is "session" (key: the session id's hash), "token"
    (the API token's hash) or "guest" (a teaching participant's id)."""

    kind: str
    key: str


class Rights(Protocol):
    """What a live document connection may do (collab.web.sync.Connection)."""

    contribute: bool
    moderate: bool


@dataclass(eq=False)
class Link:
    """One open websocket or event stream."""

    holder: str  # whose caps it counts against: "user:{id}" or "guest:{participant id}"
    kind: str  # SOCKET or STREAM
    credential: Credential | None  # None: nothing that the database knows (refused)
    case_id: str | None = None
    teaching_id: str | None = None
    meeting_id: str | None = None
    rights: Rights | None = None  # a case websocket's current rights
    expires: datetime | None = None  # when its credential ends, if it does by itself
    ended: tuple[int, str] | None = None
    _on_end: Callable[[int, str], None] | None = field(default=None, repr=False)

    def attach(self, on_end: Callable[[int, str], None]) -> None:
        """How to close the connection (``on_end(code, reason)``); at once if it has ended already."""
        self._on_end = on_end
        if self.ended is not None:
            on_end(*self.ended)

    def end(self, code: int, reason: str) -> None:
        if self.ended is None:
            self.ended = (code, reason)
            if self._on_end is not None:
                self._on_end(code, reason)


@dataclass(frozen=True)
class _Holder:
    user: User | None  # None for a teaching guest
    expires: datetime | None


def credential(conn: HTTPConnection) -> Credential | None:
    """The credential that signed this request in (as collab.web.auth reads it), if any."""
    auth = conn.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return Credential("token", token_hash(auth[7:].strip()))
    session = conn.scope.get("session")
    return Credential("session", session) if session else None


async def refuse(websocket: WebSocket, status: int, message: str) -> None:
    """Turn a websocket away before it opens: an HTTP answer where the server can send one
    (``collab serve`` can), else the close code 4000 + ``status``."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error(status, message))
    else:
        await websocket.close(code=4000 + status, reason=message)


class LiveLinks:
    """The open links, their caps, and the watcher that ends them when their right ends."""

    def __init__(self, db: Database, classroom: Classroom, access: AccessControl) -> None:
        self.db = db
        self.classroom = classroom
        self.access = access
        self._links: set[Link] = set()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveLinks:
        self._watcher = asyncio.create_task(self.watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def open(self, link: Link) -> bool:
        """Count the link in; False (and not counted) if its holder has as many as allowed."""
        cap = MAX_SOCKETS_PER_PERSON if link.kind == SOCKET else MAX_STREAMS_PER_PERSON
        if self._counts[link.holder, link.kind] >= cap:
            return False
        self._counts[link.holder, link.kind] += 1
        self._links.add(link)
        return True

    def close(self, link: Link) -> None:
        """The connection has gone."""
        if link in self._links:
            self._links.discard(link)
            self._counts[link.holder, link.kind] -= 1
            if not self._counts[link.holder, link.kind]:
                del self._counts[link.holder, link.kind]

    @staticmethod
    def too_many(kind: str) -> str:
        cap = MAX_SOCKETS_PER_PERSON if kind == SOCKET else MAX_STREAMS_PER_PERSON
        return f"Too many live connections: at most {cap} open {kind}s per person. Close some tabs."

    async def admit(self, link: Link) -> tuple[int, str] | None:
        """Count the link in if its holder has fewer than the cap and its credential holds; else
        the HTTP status and message to refuse it with. ``close`` it when it goes."""
        if not self.open(link):
            return 429, self.too_many(link.kind)
        if not await self.verify(link):
            self.close(link)
            return 403, "Your sign-in has ended. Sign in again."
        return None

    async def verify(self, link: Link) -> bool:
        """Whether the link's credential holds, read from the database (not the identity cache)."""
        if link.credential is None:
            return False
        holder = await self._holder(link.credential)
        if holder is None:
            return False
        link.expires = holder.expires
        return not _expired(link, datetime.now(UTC))

    def end_session(self, id_hash: str) -> None:
        """Sign-out: every link of that session ends now."""
        for link in list(self._links):
            if link.credential == Credential("session", id_hash):
                link.end(ENDED, SIGNED_OUT)

    async def recheck(self, case_id: str | None = None) -> None:
        """Re-check the links (of one case, and every teaching session's, when ``case_id`` is
        given) against the database, and end those whose right has ended."""
        self.classroom.forget_all()  # teaching sessions end with their educator's access
        links = [
            link
            for link in self._links
            if link.ended is None and (case_id is None or link.case_id == case_id or link.teaching_id)
        ]
        for changed in {link.case_id for link in links if link.case_id}:
            self.access.forget(changed)  # a page reloaded after this sees the new rights
        holders: dict[Credential | None, _Holder | None] = {None: None}
        cases: dict[str, tuple[Case | None, list[Share]]] = {}
        for link in links:
            if link.credential not in holders:
                holders[link.credential] = await self._holder(link.credential)
            holder = holders[link.credential]
            if holder is None:
                link.end(ENDED, SIGNED_OUT)
                continue
            link.expires = holder.expires
            if link.case_id is not None and holder.user is not None:
                if link.case_id not in cases:
                    case = await self.db.catalog.case(link.case_id)
                    cases[link.case_id] = (case, await self.db.catalog.shares(link.case_id) if case else [])
                _check_case(link, holder.user, *cases[link.case_id])
            elif link.teaching_id is not None:
                session = await self.classroom.session(link.teaching_id)
                if session is None or not session.open:
                    link.end(TEACHING_ENDED, SESSION_OVER)
            elif link.meeting_id is not None and holder.user is not None:
                meeting = await self.db.meetings.get(link.meeting_id)
                attendees = {user_id for user_id, _ in await self.db.meetings.attendees(link.meeting_id)}
                if meeting is None or not takes_part(holder.user, meeting, attendees):
                    link.end(ENDED, MEETING_ENDED)
        self.expire()

    def expire(self) -> None:
        """End the links whose sign-in or guest place has run out."""
        now = datetime.now(UTC)
        for link in list(self._links):
            if _expired(link, now):
                link.end(ENDED, SIGNED_OUT)

    async def watch(self) -> None:
        """Every WATCH_INTERVAL_S: expiries, and a re-check if another process changed the database."""
        version = await self._data_version()
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                now = await self._data_version()
                if now != version:
                    version = now
                    await self.recheck()
                self.expire()
            except Exception:  # the next round tries again; say so
                log.exception("could not re-check live connections")

    async def _data_version(self) -> int:
        return await self.db.data_version()

    async def _holder(self, credential: Credential | None) -> _Holder | None:
        """Who holds the credential now, and until when; None if it no longer holds."""
        if credential is None:
            return None
        if credential.kind == "session":
            found = await self.db.people.session_until(credential.key)
            return _Holder(*found) if found else None
        if credential.kind == "token":
            grant = await self.db.people.token_grant(credential.key)
            if grant is None:
                return None
            return _Holder(grant[0], datetime.fromisoformat(grant[2]) if grant[2] else None)
        joined = await self.db.teaching.joined(int(credential.key))
        return _Holder(None, guest_expires(joined)) if joined else None


class LiveStream(StreamingResponse):
    """An event stream that leaves the live links when it ends, however it ends (even if the
    browser went away before its first byte, when the stream's own code never runs)."""

    def __init__(self, live: LiveLinks, link: Link, content: AsyncIterator[str], **options: Any) -> None:
        super().__init__(content, **options)
        self.live = live
        self.link = link

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.live.close(self.link)


def guest_expires(joined: str) -> datetime:
    """When a teaching guest's place ends, from when they joined."""
    return datetime.fromisoformat(joined) + GUEST_LIFETIME


def _expired(link: Link, now: datetime) -> bool:
    return link.ended is None and link.expires is not None and link.expires <= now


def _check_case(link: Link, user: User, case: Case | None, shares: list[Share]) -> None:
    """End a case link that may no longer see the case, or may no longer do what it did."""
    access = case_access(user, case, shares) if case else None
    if case is None or access is None:
        link.end(ENDED, CASE_ENDED)
        return
    rights = link.rights
    moderate = access.contribute and may_moderate(user, case)
    if rights is not None and (rights.contribute > access.contribute or rights.moderate > moderate):
        # The viewer reloads and comes back read-only: its tools and whatever it had drawn
        # meanwhile would otherwise be refused change by change.
        link.end(RIGHTS_CHANGED, READ_ONLY_NOW)
