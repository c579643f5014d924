"""Registered slides by id: opened on demand, kept in an LRU, tiles cached once encoded."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

from collab.slides import open_slide
from collab.slides.cache import SizedLRU
from collab.slides.deepzoom import DeepZoomSlide

P = ParamSpec("P")
T = TypeVar("T")


class SlideNotFound(Exception):
    """No registered slide has that id."""


class SlideLibrary:
    """Opens registered slides and runs their blocking work on a thread pool.

    ``resolve`` maps a slide id to its registered file (or None); nothing else is
    ever opened, so a request can only reach files that were registered.
    """

    def __init__(
        self,
        resolve: Callable[[str], Awaitable[Path | None]],
        *,
        threads: int,
        max_open: int = 16,
        tile_cache_bytes: int = 128 << 20,
        chunk_cache_bytes: int = 256 << 20,
    ) -> None:
        self._resolve = resolve
        self._max_open = max_open
        self._open: OrderedDict[str, DeepZoomSlide] = OrderedDict()
        self._opening: dict[str, asyncio.Future[DeepZoomSlide]] = {}
        self._lock = threading.Lock()
        self.tiles: SizedLRU[bytes] = SizedLRU(tile_cache_bytes)
        self.chunks: SizedLRU[np.ndarray] = SizedLRU(chunk_cache_bytes)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slides")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking slide work off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def cached(self, slide_id: str) -> DeepZoomSlide | None:
        """The slide if it is open already, without touching the database."""
        with self._lock:
            slide = self._open.get(slide_id)
            if slide is not None:
                self._open.move_to_end(slide_id)
            return slide

    async def get(self, slide_id: str) -> DeepZoomSlide:
        """The open slide; raises SlideNotFound or SlideError."""
        slide = self.cached(slide_id)
        if slide is not None:
            return slide
        pending = self._opening.get(slide_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DeepZoomSlide] = asyncio.get_running_loop().create_future()
        self._opening[slide_id] = future
        try:
            path = await self._resolve(slide_id)
            if path is None:
                raise SlideNotFound(slide_id)
            slide = await self.run(self._open_file, slide_id, path)
            future.set_result(slide)
            return slide
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._opening[slide_id]

    def _open_file(self, slide_id: str, path: Path) -> DeepZoomSlide:
        reader = open_slide(path, self.chunks)
        slide = DeepZoomSlide(slide_id, path, reader)
        with self._lock:
            self._open[slide_id] = slide
            while len(self._open) > self._max_open:
                # Not closed here: a tile may still be drawn from it on another
                # thread. Readers release their files once nothing uses them.
                self._open.popitem(last=False)
        return slide

    def close(self) -> None:
        """Close every slide and stop the threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for slide in self._open.values():
                slide.reader.close()
            self._open.clear()
