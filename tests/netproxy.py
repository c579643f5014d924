"""A TCP proxy on loopback that behaves like a slow, lossy long-distance link, for tests.

Every chunk of bytes is delivered ``one_way_s`` after it was read (so a round trip costs
twice that). Loss is simulated as TCP experiences it: TCP retransmits, so a lost segment
is not missing but late, by a retransmission timeout, and everything behind it waits
(head-of-line blocking). With probability ``loss`` a chunk is held back by a random
timeout in ``rto_s``; byte order is always kept. Seeded, so a failure can be replayed.
``cut()`` drops every connection at once, as a dead Wi-Fi or a NAT timeout would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field


@dataclass
class LinkStats:
    """What the proxy did, to print beside a test's result."""

    connections: int = 0
    chunks: int = 0
    lost: int = 0  # chunks held back by a retransmission timeout
    cuts: int = 0


@dataclass(eq=False)  # kept in a set, by identity
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class FlakyProxy:
    """``async with FlakyProxy(upstream_port) as proxy``: connect to ``proxy.port`` instead."""

    def __init__(
        self,
        upstream_port: int,
        *,
        one_way_s: float = 0.3,
        loss: float = 0.02,
        rto_s: tuple[float, float] = (0.2, 1.0),
        seed: int = 0,
    ) -> None:
        self.upstream_port = upstream_port
        self.one_way_s = one_way_s
        self.loss = loss
        self.rto_s = rto_s
        self.random = random.Random(seed)
        self.stats = LinkStats()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    async def __aenter__(self) -> FlakyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.abort()
            for task in link.tasks:
                task.cancel()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection (both ends see it go at once, without a goodbye)."""
        self.stats.cuts += 1
        for link in list(self._links):
            link.abort()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.stats.connections += 1
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._carry(client_reader, upstream_writer, link)),
            asyncio.create_task(self._carry(upstream_reader, client_writer, link)),
        ]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*link.tasks, return_exceptions=True)
        self._links.discard(link)
        link.abort()  # both directions have ended

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        """One direction: read as fast as the sender writes, deliver each chunk when it is due."""
        loop = asyncio.get_running_loop()
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        last_due = 0.0

        async def deliver() -> None:
            try:
                while True:
                    at, chunk = await due.get()
                    delay = at - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)  # the link's latency itself
                    if not chunk:  # the sender closed: pass the end on, after its data
                        writer.write_eof()
                        return
                    writer.write(chunk)
                    await writer.drain()
            except OSError:  # the receiving end went away: so does the other, as on a real link
                link.abort()

        delivering = asyncio.create_task(deliver())
        try:
            while True:
                chunk = await reader.read(65536)
                at = loop.time() + self.one_way_s
                self.stats.chunks += 1
                if chunk and self.random.random() < self.loss:
                    self.stats.lost += 1
                    at += self.random.uniform(*self.rto_s)
                last_due = max(at, last_due)  # nothing overtakes a late chunk
                due.put_nowait((last_due, chunk))
                if not chunk:
                    break
            await delivering
        except OSError:
            link.abort()
        finally:
            delivering.cancel()
