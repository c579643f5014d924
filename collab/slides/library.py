"""Registered slides by id: opened on demand, kept in an LRU, tiles cached once encoded."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import numpy as np

from collab.singleflight import SingleFlight
from collab.slides import open_slide
from collab.slides.cache import SizedLRU
from collab.slides.deepzoom import DeepZoomSlide
from collab.slides.dicomweb import DicomWebRef
from collab.slides.warmup import warm_up_codecs
from collab.slides.workers import TileWorkers

P = ParamSpec("P")
T = TypeVar("T")
# Where an image came from: the cache, a render for this request, or one under way for another.
Source = Literal["hit", "rendered", "shared"]
# Draws one encoded image, off the event loop (threads or worker processes).
Render = Callable[[], Awaitable[bytes]]


class SlideNotFound(Exception):
    """No registered slide has that id."""


class SlideLibrary:
    """Opens registered slides and runs their blocking work on a thread pool.

    ``resolve`` maps a slide id to its registered file (or None); nothing else is
    ever opened, so a request can only reach files that were registered.
    """

    def __init__(
        self,
        resolve: Callable[[str], Awaitable[Path | DicomWebRef | None]],
        *,
        threads: int,
        max_open: int = 16,
        tile_cache_bytes: int = 128 << 20,
        chunk_cache_bytes: int = 256 << 20,
        tile_processes: int = 0,
    ) -> None:
        self._resolve = resolve
        self._max_open = max_open
        self._open: OrderedDict[str, DeepZoomSlide] = OrderedDict()
        self._opening: SingleFlight[DeepZoomSlide] = SingleFlight()
        self._rendering: dict[Hashable, asyncio.Task[bytes]] = {}
        self._prefetching: set[asyncio.Future[DeepZoomSlide]] = set()
        self._lock = threading.Lock()
        self.tiles: SizedLRU[bytes] = SizedLRU(tile_cache_bytes)
        self.chunks: SizedLRU[np.ndarray] = SizedLRU(chunk_cache_bytes)
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slides")
        # Tiles drawn in processes of their own, when asked for; the rest stays on the threads.
        self._workers = (
            TileWorkers(tile_processes, chunk_cache_bytes=chunk_cache_bytes, max_open=max_open)
            if tile_processes > 0
            else None
        )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking slide work off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def tile_render(self, slide: DeepZoomSlide, z_level: int, t_col: int, t_row: int, fmt: str) -> Render:
        """How to draw one tile: on a worker process if there are any, else on the threads."""
        workers = self._workers
        if workers is None:
            return lambda: self.run(slide.tile, z_level, t_col, t_row, fmt)
        return lambda: workers.tile(slide, z_level, t_col, t_row, fmt)

    def thread_render(self, render: Callable[[], bytes]) -> Render:
        """A blocking render, run on the threads."""
        return lambda: self.run(render)

    async def image(self, key: Hashable, render: Render) -> tuple[bytes, Source]:
        """An encoded image from the cache, or rendered once however many ask at once; and
        where it came from (counted in /metrics).

        People in one session look at the same place, so the same tile is often
        asked for by several of them within milliseconds. The render runs as its
        own task: a client that goes away does not cancel it for the others.
        """
        body = self.tiles.get(key)
        if body is not None:
            return body, "hit"
        task = self._rendering.get(key)
        source: Source = "shared"
        if task is None:
            task = asyncio.ensure_future(self._render(key, render))
            self._rendering[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
            source = "rendered"
        return await asyncio.shield(task), source

    async def _render(self, key: Hashable, render: Render) -> bytes:
        body = await render()
        self.tiles.put(key, body, len(body))
        return body

    def _finished(self, key: Hashable, task: asyncio.Task[bytes]) -> None:
        self._rendering.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter re-raises it itself

    async def warm_up(self) -> None:
        """Start every worker thread and load the codecs before the first request."""
        loop = asyncio.get_running_loop()
        started = threading.Barrier(self._threads)
        # Each job waits for all the others, so each runs on a thread of its own.
        await asyncio.gather(*(loop.run_in_executor(self._pool, started.wait) for _ in range(self._threads)))
        await self.run(warm_up_codecs)
        if self._workers is not None:
            await self._workers.warm_up()

    @property
    def open_count(self) -> int:
        """Slides held open now."""
        return len(self._open)

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
        return await self._opening.run(slide_id, lambda: self._load_slide(slide_id))

    def prefetch(self, slide_id: str) -> None:
        """Start opening a slide that is about to be asked for (a case page was just served).

        Opening a slide cold costs a few hundred milliseconds; doing it while the browser
        loads the viewer takes that off the time to the first tile. Errors are left for
        the real request to report.
        """
        if self.cached(slide_id) is not None:
            return
        task = asyncio.ensure_future(self.get(slide_id))
        self._prefetching.add(task)
        task.add_done_callback(self._prefetched)

    def _prefetched(self, task: asyncio.Future[DeepZoomSlide]) -> None:
        self._prefetching.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failure here is reported by the request that follows

    async def _load_slide(self, slide_id: str) -> DeepZoomSlide:
        path = await self._resolve(slide_id)
        if path is None:
            raise SlideNotFound(slide_id)
        return await self.run(self._open_file, slide_id, path)

    def _open_file(self, slide_id: str, path: Path | DicomWebRef) -> DeepZoomSlide:
        reader = open_slide(path, self.chunks)
        slide = DeepZoomSlide(slide_id, path, reader)
        # A viewer opening the slide first asks for the overview levels, each a
        # single small tile drawn from the smallest slide level: have them ready.
        for z_level, t_dims in enumerate(slide.geometry.t_dimensions):
            if t_dims == (1, 1):
                body = slide.tile(z_level, 0, 0, "jpeg")
                self.tiles.put(slide.tile_key(z_level, 0, 0, "jpeg"), body, len(body))
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
        if self._workers is not None:
            self._workers.close()
        with self._lock:
            for slide in self._open.values():
                slide.reader.close()
            self._open.clear()
