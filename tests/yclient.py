"""A minimal Python y-websocket client for tests: a pycrdt Doc kept in sync with a server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets
from pycrdt import (
    Doc,
    Map,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from collab.sync.protocol import AwarenessEntry, encode_awareness, parse, parse_awareness

HANDSHAKE_TIMEOUT_S = 60


class YClient:
    """Connects, syncs, sends its own changes, and records what others do."""

    def __init__(
        self, url: str, token: str, doc: Doc[Any] | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        self.url = url
        self.token = token
        # Instead of the bearer token, e.g. a teaching participant's cookie.
        self.headers = headers
        self.frames: list[bytes] = []  # every frame received, as it came
        self.doc: Doc[Any] = doc or Doc()
        self.awareness: dict[int, Any] = {}
        self.seen: dict[int, Any] = {}  # every state ever seen, by client id
        self.changed = asyncio.Condition()
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None
        self._clock = 0
        self.doc.observe(self._on_update)

    def _on_update(self, event: Any) -> None:
        if self._ws is not None and not self._applying:
            asyncio.get_running_loop().create_task(self._send(create_update_message(event.update)))

    _applying = False

    async def connect(self) -> YClient:
        # A handshake bound is a timed assertion: a server busy with a burst (a slow CI machine,
        # three clients re-sending thousands of edits) may take more than websockets' 10 s default.
        self._ws = await websockets.connect(
            self.url,
            additional_headers=self.headers or {"Authorization": f"Bearer {self.token}"},
            max_size=None,
            open_timeout=HANDSHAKE_TIMEOUT_S,
        )
        await self._send(create_sync_message(self.doc))
        self._task = asyncio.create_task(self._read())
        return self

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(data)

    async def send_raw(self, data: bytes) -> None:
        # The server may close while a big frame is still going out; the close code tells why.
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(data)

    async def _read(self) -> None:
        try:
            async for data in self._ws:
                self.frames.append(data)
                frame = parse(data)
                if frame.kind == YMessageType.SYNC:
                    self._applying = True
                    try:
                        reply = handle_sync_message(
                            bytes([frame.sync_kind or 0]) + _len(frame.payload), self.doc
                        )
                    finally:
                        self._applying = False
                    if reply is not None:
                        await self._send(reply)
                    if frame.sync_kind == YSyncMessageType.SYNC_STEP2:
                        self.synced.set()
                elif frame.kind == YMessageType.AWARENESS:
                    for entry in parse_awareness(frame.payload):
                        if entry.state_json == "null":
                            self.awareness.pop(entry.client_id, None)
                        else:
                            self.awareness[entry.client_id] = json.loads(entry.state_json)
                            self.seen[entry.client_id] = self.awareness[entry.client_id]
                async with self.changed:
                    self.changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self._ws.close_code
            self.close_reason = self._ws.close_reason or ""
            self.closed.set()
            async with self.changed:
                self.changed.notify_all()

    async def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        """Wait until ``predicate()`` holds, re-checking whenever a message arrives."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(predicate)

    async def set_awareness(self, state: dict[str, Any] | None) -> None:
        self._clock += 1
        text = json.dumps(state) if state is not None else "null"
        await self._send(encode_awareness([AwarenessEntry(self.doc.client_id, self._clock, text)]))

    def annotations(self) -> Map[Any]:
        return self.doc.get("annotations", type=Map)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task:
            await self._task


def _len(payload: bytes) -> bytes:
    from pycrdt import write_var_uint

    return write_var_uint(len(payload)) + payload


def point_annotation(author: int, label: str) -> Map[Any]:
    """A point annotation as the viewer makes one (docs/sync.md), by ``author`` (a user id)."""
    return Map(
        {
            "slide": "s1",
            "kind": "point",
            "points": [[10.0, 20.0]],
            "label": label,
            "color": "#e91e63",
            "author": str(author),
            "created": "2026-11-29T10:00:00Z",
            "updated": "2026-11-29T10:00:00Z",
        }
    )
