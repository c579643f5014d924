"""``WS /ws/cases/{case_id}``: the y-websocket endpoint of a case's shared document."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import ClassVar

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from collab.domain import User, case_access, may_moderate
from collab.sync.protocol import ProtocolError, parse
from collab.sync.room import Rejected
from collab.sync.rooms import Rooms
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

    def __init__(self, websocket: WebSocket, user: User, contribute: bool, moderate: bool) -> None:
        self.websocket = websocket
        self.user = user
        self.user_id = user.id
        self.contribute = contribute
        self.moderate = moderate
        self.closing: asyncio.Task[None] | None = None
        direct = websocket.scope.get("extensions", {}).get(EXTENSION)
        self._send_bytes: Callable[[bytes], int] | None = direct["send"] if direct else None
        self._abort: Callable[[], None] | None = direct["abort"] if direct else None
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUE)
        self._backlogged_since: float | None = None

    def send(self, data: bytes) -> None:
        """Send or queue a frame; a peer that stops reading is disconnected, the others never wait."""
        if self._send_bytes is None:
            try:
                self.queue.put_nowait(data)
            except asyncio.QueueFull:
                self.close(4408, "too slow: messages piled up")
            return
        if self.closing is not None:
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
    await websocket.accept()
    peer = Connection(websocket, user, access.contribute, access.contribute and may_moderate(user, case))
    await serve_peer(peer, app.state.rooms, case_id)


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
            if message["type"] == "websocket.disconnect":
                break
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
    """Close the live connections of people who may no longer see the case (a share ended).

    Access is checked when a connection opens; without this, a tab left open would keep
    receiving the case's annotations and discussion after its share was revoked.
    """
    room = app.state.rooms.open_room(case_id)
    if room is None:
        return
    case = await app.state.db.catalog.case(case_id)
    shares = await app.state.db.catalog.shares(case_id)
    for peer in list(room.peers):
        if isinstance(peer, Connection) and (case is None or case_access(peer.user, case, shares) is None):
            peer.close(4403, "access to this case has ended")


routes = [WebSocketRoute("/ws/cases/{case_id}", case_socket)]
