"""``WS /ws/cases/{case_id}``: the y-websocket endpoint of a case's shared document."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from collab.domain import User, case_access, may_moderate
from collab.store import Database
from collab.sync.presence import presence_user
from collab.sync.protocol import ProtocolError, parse
from collab.sync.room import Rejected
from collab.sync.rooms import Rooms
from collab.web.live import SOCKET, Link, LiveLinks, credential, refuse
from collab.wsfast import EXTENSION, LinkClosed

log = logging.getLogger("collab.sync")

# Frames queued for one peer before it counts as too slow and is disconnected.
MAX_QUEUE = 1000
# Direct sends: a peer is too slow once over SLOW_BACKLOG_BYTES have waited in its socket
# buffer for SLOW_FOR_S (bursts, like a big first sync, drain in milliseconds), or at once
# over MAX_BACKLOG_BYTES, so one stalled laptop cannot fill the server's memory.
SLOW_BACKLOG_BYTES = 1 << 20
SLOW_FOR_S = 5.0
MAX_BACKLOG_BYTES = 64 << 20
# And all backlogged peers together: many stalled connections (say, one person's tabs left
# on a laptop that went to sleep) must not add up to the server's memory either.
TOTAL_BACKLOG_BYTES = 256 << 20


class Connection:
    """One websocket peer: its rights, and how frames reach it without making others wait.

    Under ``collab serve`` frames are written straight to the socket (collab.wsfast);
    under another ASGI server they go through a bounded queue drained by one task.
    """

    # Peers whose socket buffer holds over SLOW_BACKLOG_BYTES: how much each, and the sum.
    _backlogs: ClassVar[dict[Connection, int]] = {}
    _backlog_total: ClassVar[int] = 0

    def __init__(
        self,
        websocket: WebSocket,
        user: User,
        contribute: bool,
        moderate: bool,
        *,
        identity: dict[str, Any] | None = None,
        chairs: bool = False,
        discuss: bool = False,
    ) -> None:
        self.websocket = websocket
        self.user = user
        self.user_id = user.id
        self.contribute = contribute
        self.moderate = moderate
        self._discuss = discuss
        # Chairs an open meeting with this case on its agenda: presents, read-only or not.
        self.chairs = chairs
        # The ``user`` every awareness state of this connection carries (collab.sync.presence).
        self.identity = identity or presence_user(user.id, user.display_name, user.role, None)
        self.closing: asyncio.Task[None] | None = None
        direct = websocket.scope.get("extensions", {}).get(EXTENSION)
        self._send_bytes: Callable[[bytes], int] | None = direct["send"] if direct else None
        self._abort: Callable[[], None] | None = direct["abort"] if direct else None
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUE)
        self._backlogged_since: float | None = None

    @property
    def discuss(self) -> bool:
        """May add and change their own messages in the discussion: every contributor, and
        those given only that (collab.domain.Access.discuss). ``contribute`` changes in a
        teaching room as the pen moves, so this follows it."""
        return self._discuss or self.contribute

    def send(self, data: bytes) -> None:
        """Send or queue a frame; a peer that stops reading is disconnected, the others never wait."""
        if self.closing is not None:  # nothing more for a connection being closed (its right ended)
            return
        if self._send_bytes is None:
            try:
                self.queue.put_nowait(data)
            except asyncio.QueueFull:
                self.close(4408, "too slow: messages piled up")
            return
        try:
            backlog = self._send_bytes(data)
        except LinkClosed:  # the receive loop sees the disconnect
            self.forget_backlog()
            return
        if backlog <= SLOW_BACKLOG_BYTES:
            self._backlogged_since = None
            self.forget_backlog()
            return
        Connection._backlog_total += backlog - Connection._backlogs.get(self, 0)
        Connection._backlogs[self] = backlog
        now = time.monotonic()
        if self._backlogged_since is None:
            self._backlogged_since = now
        too_slow = now - self._backlogged_since > SLOW_FOR_S or backlog > MAX_BACKLOG_BYTES
        if (too_slow or Connection._backlog_total > TOTAL_BACKLOG_BYTES) and self._abort:
            # A close frame would wait behind the backlog; the client reconnects and resyncs.
            log.warning("user %s stopped reading; connection dropped", self.user_id)
            self.forget_backlog()
            self._abort()

    def forget_backlog(self) -> None:
        """This peer no longer counts towards the backlog of all peers (it drained, or left)."""
        Connection._backlog_total -= Connection._backlogs.pop(self, 0)

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = asyncio.ensure_future(_close(self.websocket, code, reason))

    async def pump(self) -> None:
        """Drain the queue (only without direct sends)."""
        if self._send_bytes is not None:
            return
        # The ASGI send itself: Starlette's per-message state checks cost a fifth of a
        # fan-out to 200 people, and the socket is known to be open here.
        send = self.websocket._send
        try:
            while True:
                await send({"type": "websocket.send", "bytes": await self.queue.get()})

        except Exception:  # the socket went away: the receive loop sees the disconnect
            self.close(1011, "send failed")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=reason)


async def case_socket(websocket: WebSocket) -> None:
    """Join the case's room if the signed-in user may see the case; refuse before any byte otherwise.

    y-websocket puts the room name after the server URL: ``serverUrl=/ws/cases``, ``room=case_id``.
    """
    user: User | None = websocket.scope.get("user")
    app = websocket.app
    case_id = websocket.path_params["case_id"]
    case = await app.state.db.catalog.case(case_id)
    access = case_access(user, case, await app.state.db.catalog.shares(case_id)) if (user and case) else None
    if user is None or case is None or access is None:
        await websocket.close(code=4404, reason="no such case")
        return
    link = Link(f"user:{user.id}", SOCKET, credential(websocket), case_id=case_id)
    org = await app.state.db.catalog.org(user.org_id)
    # A read-only API token reads the room, whatever its holder may do in the browser.
    writes = websocket.scope.get("token_scope") != "read"
    contribute = access.contribute and writes
    peer = Connection(
        websocket,
        user,
        contribute,
        contribute and may_moderate(user, case),
        identity=presence_user(user.id, user.display_name, user.role, org.name if org else None),
        chairs=await chairs_meeting_on(app.state.db, user.id, case_id),
        discuss=access.discuss and writes,
    )
    await serve_link(websocket, link, peer, app.state.rooms)


async def chairs_meeting_on(db: Database, user_id: int, case_id: str) -> bool:
    """Whether the person chairs an open meeting with this case on its agenda: the chair
    presents there (collab.meetings.presents), whatever their rights on the case."""
    row = await db.one(
        "SELECT 1 FROM meetings m JOIN meeting_cases c ON c.meeting_id = m.id WHERE m.chair = ?"
        " AND c.case_id = ? AND m.id NOT IN (SELECT meeting_id FROM meeting_closures) LIMIT 1",
        (user_id, case_id),
    )
    return row is not None


async def serve_link(websocket: WebSocket, link: Link, peer: Connection, rooms: Rooms) -> None:
    """Open a websocket that is counted towards its holder's cap and watched by the live links
    (collab.web.live), which close it when its right ends; serve it in ``rooms`` (the case's,
    or the teaching session's) until it leaves."""
    live: LiveLinks = websocket.app.state.live
    # Over the cap, or a sign-in that ended (the identity cache may not know yet): refused.
    refused = await live.admit(link)
    if refused is not None:
        await refuse(websocket, *refused)
        return
    try:
        await websocket.accept()
        link.rights = peer
        link.attach(peer.close)
        if link.case_id is not None:
            await websocket.app.state.db.audit.record(
                "document opened",
                user=peer.user,
                client=websocket.client.host if websocket.client else None,
                case_id=link.case_id,
            )
        await serve_peer(peer, rooms, link.case_id or link.teaching_id or "")
    finally:
        live.close(link)


async def serve_peer(peer: Connection, rooms: Rooms, room_id: str) -> None:
    """Join ``peer`` (accepted) to the room and pass its frames on until it leaves or misbehaves;
    only this connection is closed on a bad frame. Shared by case and teaching rooms."""
    websocket = peer.websocket
    room = await rooms.join(room_id)
    room.join(peer)
    sender = asyncio.create_task(peer.pump())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect" or peer.closing is not None:
                break  # once closing (say, its right ended), nothing more it sends is applied
            data = message.get("bytes")
            if data is None:
                peer.close(1003, "binary frames only")
                break
            try:
                room.receive(peer, parse(data))
            except ProtocolError as exc:
                peer.close(1007, f"bad frame: {exc}")
                break
            except Rejected as exc:
                peer.close(exc.code, exc.reason)
                break
            except Exception:
                log.exception("frame from user %s in room %s failed", peer.user_id, room_id)
                peer.close(1011, "the server could not handle that frame")
                break
    except WebSocketDisconnect:
        pass
    finally:
        room.leave(peer)
        peer.forget_backlog()
        sender.cancel()
        if peer.closing is None:
            peer.close(1000, "")
        assert peer.closing is not None
        await peer.closing  # the close frame with its code goes out before the app returns
        await rooms.left(room)


async def drop_lost_peers(app: Starlette, case_id: str) -> None:
    """After a share of the case changed (made, revoked, ended with its opinion or meeting): close
    the live connections of people who may no longer see the case (4403), or who may now only
    read it (4409), and the teaching sessions whose educator lost it (collab.web.live).

    Access is checked when a connection opens; without this, a tab left open would keep
    receiving the case's annotations and discussion after its share was revoked.
    """
    live: LiveLinks = app.state.live
    await live.recheck(case_id)


routes = [WebSocketRoute("/ws/cases/{case_id}", case_socket)]
