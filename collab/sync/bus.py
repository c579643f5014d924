"""Rooms shared by several server processes: what one process's peers send reaches the others
through Redis (pub/sub), and a process that dies is noticed by the others (a heartbeat key).

Each open room is a channel, ``collab:room:<id>``. A message is the sending process's id, one
byte saying what it is, and its body:

- ``u``: a document update, already checked and stored (or queued to be) by the sender;
- ``a``: awareness states, already checked and named by the sender, with whose they are;
- ``q``: a state vector: "I opened this room; send me what I lack" (answered with ``u`` and
  ``a``), since an update published before the asker subscribed reached it by no other way
  until its sender's next write lands in the database.

A message is handled by every process with that room open but the one that sent it. Nobody
stores what arrives here: the process whose peer sent an update is its only writer
(docs/sync.md). A process keeps ``collab:alive:<id>`` alive with a short TTL; when the key of a
process whose peers were seen goes, their pointers go for everyone (``Handler.gone``).

Redis going away loses nothing stored: peers keep working on their own process, whose writes
land in the database; when Redis is back every open room resyncs (``Handler.resync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import struct
import time
from typing import Any, Protocol

log = logging.getLogger("collab.sync")

CHANNEL = "collab:room:"
ALIVE = "collab:alive:"
# A process renews its key every HEARTBEAT_S; the key lapses ALIVE_TTL_MS after the last renewal,
# and the others look every HEARTBEAT_S: a dead process's peers go within TTL + one look (2 s).
HEARTBEAT_S = 0.5
ALIVE_TTL_MS = 1500
# Reconnecting to Redis: first after this, doubling up to the cap.
RETRY_FIRST_S = 0.1
RETRY_CAP_S = 2.0
# Messages waiting to be published while Redis is slow or away; past it the oldest go (the
# database has the updates, and a resync follows the reconnection).
QUEUE_LIMIT = 10_000
# How long a starting process waits for Redis before it serves anyway.
STARTUP_WAIT_S = 5.0

UPDATE, AWARENESS, ASK = b"u", b"a", b"q"
ID_BYTES = 16  # hex of 8 random bytes


class Handler(Protocol):
    """What the bus tells the rooms."""

    def remote(self, room_id: str, origin: str, kind: bytes, body: bytes) -> None: ...

    def gone(self, origin: str) -> None: ...

    def resync(self) -> None: ...


def awareness_body(payload: bytes, users: dict[int, int], loud: bool) -> bytes:
    """An awareness message's body: whose each client id is, whether everyone may see them
    (teaching rooms), then the awareness frame's payload."""
    head = json.dumps({"users": {str(k): v for k, v in users.items()}, "loud": loud}).encode()
    return struct.pack(">I", len(head)) + head + payload


def parse_awareness_body(body: bytes) -> tuple[bytes, dict[int, int], bool]:
    (size,) = struct.unpack(">I", body[:4])
    head = json.loads(body[4 : 4 + size])
    return body[4 + size :], {int(k): int(v) for k, v in head["users"].items()}, bool(head["loud"])


class Bus:
    """One process's link to the others; use as ``async with Bus(url) as bus`` after ``attach``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.process_id = secrets.token_hex(ID_BYTES // 2)
        self.up = False
        self._handlers: dict[str, Handler] = {}  # channel prefix -> the rooms it names
        self._rooms: set[str] = set()  # channels subscribed to
        self._seen: dict[str, float] = {}  # other processes heard from -> when
        self._grace_until = 0.0  # time.monotonic() before which nobody is declared dead
        self._connected = asyncio.Event()  # set once the first subscription connection is up
        self._wanted = asyncio.Event()  # a first channel was subscribed to: there is something to read
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: Any = None
        self._pubsub: Any = None
        # For /metrics.
        self.published = 0
        self.received = 0
        self.dropped = 0

    def attach(self, prefix: str, handler: Handler) -> None:
        """Rooms whose ids are written ``prefix + id`` on the bus (case and teaching rooms)."""
        self._handlers[prefix] = handler

    async def __aenter__(self) -> Bus:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries of redis-py's own: it would reconnect the subscription quietly, and what
        # was published meanwhile would be missed with nobody told to resync.
        self._client = redis.Redis.from_url(
            self.url, socket_connect_timeout=2, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._publish_loop()),
            asyncio.create_task(self._heartbeat()),
        ]
        # Serve once connected, if Redis answers soon; if not, serve anyway (/readyz says why),
        # and rooms resync when it does.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), STARTUP_WAIT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._client.delete(ALIVE + self.process_id)
        with contextlib.suppress(Exception):
            await self._client.aclose()

    async def ping(self) -> None:
        """Raise unless Redis answers (for /readyz)."""
        await asyncio.wait_for(self._client.ping(), 2.0)

    # ------------------------------------------------------------------ sending

    async def subscribe(self, room: str) -> None:
        """Hear what the other processes send to ``room``: when this returns, the subscription
        is on its way to Redis ahead of anything this process publishes later (or Redis is
        down, and a resync follows its return)."""
        channel = CHANNEL + room
        self._rooms.add(channel)
        if self._pubsub is not None and self.up:
            # On failure the listener notices too, and subscribes to everything again.
            with contextlib.suppress(Exception):
                await self._pubsub.subscribe(channel)
            self._wanted.set()

    async def unsubscribe(self, room: str) -> None:
        channel = CHANNEL + room
        self._rooms.discard(channel)
        if self._pubsub is not None and self.up:
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(channel)

    def publish(self, room: str, kind: bytes, body: bytes) -> None:
        """Send to the other processes with ``room`` open, in order, without waiting."""
        if self._outbox.qsize() >= QUEUE_LIMIT:
            self._outbox.get_nowait()
            self.dropped += 1
        self._outbox.put_nowait((CHANNEL + room, self.process_id.encode() + kind + body))

    async def _publish_loop(self) -> None:
        while True:
            channel, message = await self._outbox.get()
            while True:
                try:
                    await self._client.publish(channel, message)
                    self.published += 1
                    break
                except Exception:  # Redis away: the listener reconnects; keep the order
                    await asyncio.sleep(RETRY_FIRST_S)

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self._client.set(ALIVE + self.process_id, b"1", px=ALIVE_TTL_MS)
                await self._look_for_the_dead()
            except Exception:
                pass  # the listener says Redis is down, and resyncs when it is back
            await asyncio.sleep(HEARTBEAT_S)

    async def _look_for_the_dead(self) -> None:
        others = list(self._seen)
        if not others or time.monotonic() < self._grace_until:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.exists(ALIVE + other)
            answers = await pipe.execute()
        for other, answer in zip(others, answers, strict=True):
            if not answer and other in self._seen:
                del self._seen[other]
                log.warning("server process %s stopped answering; its participants are gone", other)
                for handler in self._handlers.values():
                    handler.gone(other)

    # ------------------------------------------------------------------ receiving

    async def _listen(self) -> None:
        delay = RETRY_FIRST_S
        first = True
        while True:
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await self._client.ping()
                if self._rooms:
                    await pubsub.subscribe(*self._rooms)
                self._pubsub = pubsub
                self.up = True
                self._connected.set()
                if not first:
                    log.warning("Redis is back: every open room resyncs")
                    # The others renew their keys as they reconnect: none is dead for lacking one yet.
                    self._grace_until = time.monotonic() + ALIVE_TTL_MS / 1000 + RETRY_CAP_S
                if self._rooms:
                    # Rooms opened while this process had no subscription (after a loss, or
                    # before the first connection) may have missed what was published.
                    for handler in self._handlers.values():
                        handler.resync()
                first = False
                delay = RETRY_FIRST_S
                while True:
                    if not pubsub.subscribed:  # nothing to read yet (redis-py refuses to try)
                        await self._client.ping()  # finds a Redis that went away
                        self._wanted.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wanted.wait(), HEARTBEAT_S)
                        continue
                    message = await pubsub.get_message(timeout=HEARTBEAT_S)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["channel"].decode(), message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.up:
                    log.warning(
                        "Redis at %s went away (%s); each process serves its own peers", _safe(self.url), exc
                    )
                self.up = False
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_CAP_S)

    def _deliver(self, channel: str, data: bytes) -> None:
        origin = data[:ID_BYTES].decode(errors="replace")
        if origin == self.process_id or not channel.startswith(CHANNEL):
            return
        self.received += 1
        self._seen[origin] = time.monotonic()
        room = channel[len(CHANNEL) :]
        for prefix, handler in self._handlers.items():
            if room.startswith(prefix):
                try:
                    handler.remote(
                        room[len(prefix) :], origin, data[ID_BYTES : ID_BYTES + 1], data[ID_BYTES + 1 :]
                    )
                except Exception:  # one bad message must not stop the listener
                    log.exception("could not apply a message from server process %s", origin)
                return


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
