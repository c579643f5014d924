"""Doing a piece of async work once, however many ask for it at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    """Concurrent calls for the same key share one run of the work and its outcome.

    Two people opening the same slide, or joining the same cold room, at the same
    instant must not load it twice (nor end up with two copies).
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[V]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[V]]) -> V:
        """The result of ``work()``, or of the run already in flight for ``key``."""
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await work()
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked as retrieved: every waiter re-raises it itself
            raise
        finally:
            del self._running[key]
