"""Tiles rendered in worker processes (``collab serve --tile-processes N``).

Decoding a slide's pixels and encoding a tile hold the interpreter lock for part of their time;
in threads of the server's own process they compete with the event loop that relays pointers
and document updates. Here they run in processes of their own: the server keeps the tile cache
and its single flight (collab.slides.library), and sends a worker only what identifies a tile
(the slide's id, where it is stored, the Deep Zoom address), never a reader or its pixels.

Each worker opens the slides it is asked for itself and keeps the most recent open, with a
pixel cache of its own (the server's is split between them). A worker that dies (a decoder
crashing on a damaged file, say) fails the tiles it was drawing with a SlideError and the pool
is started afresh for the next ones; the server goes on serving.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from collab.slides.reader import SlideError

if TYPE_CHECKING:
    import numpy as np

    from collab.slides.cache import SizedLRU
    from collab.slides.deepzoom import DeepZoomSlide
    from collab.slides.dicomweb import DicomWebRef

log = logging.getLogger("collab.slides")

# In a worker process: its open slides, most recently used last, and its pixel cache.
_open: OrderedDict[str, DeepZoomSlide] = OrderedDict()
_open_lock = threading.Lock()
_chunks: SizedLRU[np.ndarray] | None = None
_max_open = 16


def _start_worker(chunk_cache_bytes: int, max_open: int) -> None:
    global _chunks, _max_open
    from collab.slides.cache import SizedLRU
    from collab.slides.warmup import warm_up_codecs

    _chunks = SizedLRU(chunk_cache_bytes)
    _max_open = max_open
    warm_up_codecs()


def _slide(slide_id: str, source: Path | DicomWebRef) -> DeepZoomSlide:
    from collab.slides import open_slide
    from collab.slides.deepzoom import DeepZoomSlide

    with _open_lock:
        slide = _open.get(slide_id)
        if slide is not None:
            _open.move_to_end(slide_id)
            return slide
    assert _chunks is not None, "a worker is started by _start_worker"
    slide = DeepZoomSlide(slide_id, source, open_slide(source, _chunks))
    with _open_lock:
        _open[slide_id] = slide
        while len(_open) > _max_open:
            _open.popitem(last=False)  # its files close once nothing uses them
    return slide


def render_tile(
    slide_id: str, source: Path | DicomWebRef, z_level: int, t_col: int, t_row: int, fmt: str
) -> bytes:
    """In a worker: one encoded Deep Zoom tile, exactly as the server's own threads draw it."""
    return _slide(slide_id, source).tile(z_level, t_col, t_row, fmt)


def _ready() -> int:
    return os.getpid()


class TileWorkers:
    """A pool of ``processes`` worker processes drawing tiles."""

    def __init__(self, processes: int, *, chunk_cache_bytes: int, max_open: int) -> None:
        self._processes = processes
        self._initargs = (max(chunk_cache_bytes // processes, 16 << 20), max_open)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # Spawned, not forked: the server has threads (and an event loop) a fork would copy
        # in whatever state they happen to be.
        return ProcessPoolExecutor(
            self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=self._initargs,
        )

    async def warm_up(self) -> None:
        """Start every worker (interpreter, imports, codecs) before the first tile is asked for."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, _ready) for _ in range(self._processes)))

    async def tile(self, slide: DeepZoomSlide, z_level: int, t_col: int, t_row: int, fmt: str) -> bytes:
        """The tile, drawn by a worker; SlideError if it cannot be read or its worker died."""
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(
                pool, render_tile, slide.slide_id, slide.source, z_level, t_col, t_row, fmt
            )
        except BrokenProcessPool:
            if self._pool is pool:  # the first to notice starts a new pool; the rest use it
                log.error("a tile worker process died (slide %s); starting the pool again", slide.slide_id)
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            raise SlideError("the process drawing it stopped; reload to try again") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
