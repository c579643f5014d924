"""uvicorn's HTTP protocol with two guards: a deadline for each request to arrive, and a cap on
open connections.

uvicorn times out only idle keep-alive connections: a client that sends half a request head
(or a body a byte at a time) holds its connection, a file descriptor and a task for as long as
it likes, so a few thousand of them starve the server (slowloris). Here each request must
arrive whole within ``REQUEST_READ_TIMEOUT_S`` of its first byte (of the connection's opening
for the first request), or is answered 408 and closed. Past ``max_connections`` open
connections (websockets included) a new one is answered 503 and closed at once, before any
of it is read, so file descriptors are never exhausted.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from collab.config import DEFAULT_MAX_CONNECTIONS

# A request head is under 8 KiB and the largest form 256 KiB (collab.web.forms): a client on a
# 1 Mbit/s link sends that in about 2 s, so 10 s is generous for people and short for a held
# connection.
REQUEST_READ_TIMEOUT_S = 10.0
# File descriptors kept for everything but connections: the database and its journal, open
# slides (a DICOM slide is a folder of files), the listening socket, logs, worker threads.
RESERVED_FILES = 512
RETRY_AFTER_S = 5


def _answer(status: str, message: str, *headers: str) -> bytes:
    body = message.encode()
    lines = [
        f"HTTP/1.1 {status}",
        "content-type: text/plain; charset=utf-8",
        f"content-length: {len(body)}",
        "connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


TOO_SLOW = _answer("408 Request Timeout", "The request did not arrive in time. Send it again.\n")
TOO_MANY = _answer(
    "503 Service Unavailable",
    "Too many connections to the server just now. Try again in a few seconds.\n",
    f"retry-after: {RETRY_AFTER_S}",
)


class GuardedHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a read deadline per request and a cap on connections."""

    max_connections = DEFAULT_MAX_CONNECTIONS

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(TOO_MANY)
            transport.close()
            return
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_deadline()

    def on_message_complete(self) -> None:
        self._stop_deadline()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_deadline()  # the websocket protocol has pings and timeouts of its own
        super().handle_websocket_upgrade()

    def _start_deadline(self) -> None:
        if self.read_deadline is None:
            self.read_deadline = self.loop.call_later(REQUEST_READ_TIMEOUT_S, self._deadline_passed)

    def _stop_deadline(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _deadline_passed(self) -> None:
        self.read_deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # The server stopped reading (a pipelined request waits its turn, or the app has
            # not taken the body yet): the client is not the one keeping the request waiting.
            self._start_deadline()
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(TOO_SLOW)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's answer, if it comes now, goes nowhere
        self.transport.close()


def guarded_protocol(max_connections: int) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's ``http`` option, capped at ``max_connections``."""

    class CappedHttpProtocol(GuardedHttpProtocol):
        pass

    CappedHttpProtocol.max_connections = max_connections
    return CappedHttpProtocol


def fit_to_file_limit(max_connections: int) -> int:
    """Raise this process's open-file limit as far as allowed to fit ``max_connections`` and the
    server's own files; returns the connection cap that fits (lower if the limit is lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft != resource.RLIM_INFINITY and soft < wanted:
        return max(1, soft - RESERVED_FILES)
    return max_connections
