"""TIFF-family slides (Aperio SVS, Hamamatsu NDPI, generic and OME-TIFF) via tiffslide.

tiffslide supplies metadata and associated images; pixels are read chunk by chunk
straight from the file with ``os.pread`` and tifffile's decoders, so reads need no
lock and scale across threads, and decoded chunks are shared through a cache.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
import tiffslide
from PIL import Image

from collab.slides.cache import SizedLRU
from collab.slides.cells import CellCache, CellGrid, CellRegions, halve, to_rgb
from collab.slides.jpeg import EOI, decode_half, splice_tables, with_height
from collab.slides.reader import Level, SlideError, SlideProperties

JPEG = 7
# Height in rows of the bands that strip-stored levels are cached in.
BAND_ROWS = 64


def _float_or_none(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class TiffReader(CellRegions):
    """A slide in a TIFF container."""

    _grids: Sequence[_Grid]

    def __init__(self, path: Path, chunk_cache: SizedLRU[np.ndarray]) -> None:
        # tifffile logs what it had to skip (a page beyond the end of the file, a
        # broken tag); kept so that ``verify`` can refuse a damaged file.
        self.problems: list[str] = []
        handler = _Collect(self.problems)
        tifffile_log = logging.getLogger("tifffile")
        tifffile_log.addHandler(handler)
        try:
            with warnings.catch_warnings():
                # tiffslide warns that some vendors' metadata is only partly parsed.
                warnings.simplefilter("ignore")
                self._load(path, chunk_cache)
        except SlideError:
            raise
        except Exception as exc:
            # A damaged file can open and fail only while its index is read (a truncated SVS
            # with no page left raised IndexError in `collab slides add`, found by
            # tests/test_fuzz.py): a clear refusal, not a traceback.
            if getattr(self, "_finalizer", None) is None and getattr(self, "_slide", None) is not None:
                self._slide.close()
            raise SlideError(f"the slide file's index is damaged: {exc!r}") from exc
        finally:
            tifffile_log.removeHandler(handler)

    def _load(self, path: Path, chunk_cache: SizedLRU[np.ndarray]) -> None:
        try:
            self._slide = tiffslide.TiffSlide(path)
        except Exception as exc:  # tiffslide raises many kinds for unreadable files
            raise SlideError(
                f"not a whole-slide image collab can read (SVS, NDPI, TIFF, OME-TIFF or DICOM): {exc}"
            ) from exc
        self._cells = CellCache(chunk_cache)
        tf: tifffile.TiffFile = self._slide.ts_tifffile
        pages: list[tifffile.TiffPage] = []
        for level in tf.series[0].levels:
            page = level.pages[0]
            if not isinstance(page, tifffile.TiffPage) or page.dtype != np.uint8:
                self._slide.close()
                raise SlideError("only 8-bit RGB or greyscale slides are supported")
            if page.samplesperpixel > 1 and page.planarconfig != 1:
                self._slide.close()
                raise SlideError("slides with separate colour planes are not supported")
            pages.append(page)
        if len(pages) != len(self._slide.level_dimensions):
            self._slide.close()
            raise SlideError("the slide's pyramid levels could not be matched to its pages")
        self._pages = pages
        self._grids = [_Grid.of(page) for page in pages]
        self._fd = os.open(path, os.O_RDONLY)
        # Readers evicted from the open-slide LRU may still be drawing a tile on
        # another thread, so the file is closed when the last user lets go.
        self._finalizer = weakref.finalize(self, _release, self._fd, self._slide)
        self._file_size = os.fstat(self._fd).st_size
        self.levels = tuple(
            Level(w, h, float(d))
            for (w, h), d in zip(self._slide.level_dimensions, self._slide.level_downsamples, strict=True)
        )
        props = self._slide.properties
        self.properties = SlideProperties(
            vendor=props.get("tiffslide.vendor") or "generic-tiff",
            mpp_x=_float_or_none(props.get("tiffslide.mpp-x")),
            mpp_y=_float_or_none(props.get("tiffslide.mpp-y")),
            objective_power=_float_or_none(props.get("tiffslide.objective-power")),
        )
        self.associated_names = tuple(self._slide.associated_images.keys())
        chunk = pages[0].chunks
        self.l0_chunk_size = (int(chunk[1]), int(chunk[0]))

    # -- pixels ---------------------------------------------------------------

    def _decode_chunk(self, level: int, index: int) -> np.ndarray:
        page = self._pages[level]
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        if count == 0:  # sparse TIFF: an unwritten chunk is background
            return np.full((int(page.chunks[0]), int(page.chunks[1]), 3), 255, np.uint8)
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise SlideError("the slide file is shorter than its index says (truncated?)")
        try:
            decoded, _, _ = page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)
        except Exception as exc:
            raise SlideError(f"a part of the slide file cannot be decoded: {exc}") from exc
        if decoded is None:
            raise SlideError("a part of the slide file cannot be decoded")
        return to_rgb(decoded.reshape(decoded.shape[-3:]))

    def _decode_cell(self, level: int, c_row: int, c_col: int) -> np.ndarray:
        grid = self._grids[level]
        if grid.chunks_per_cell == 1:
            return self._decode_chunk(level, c_row * grid.cells_across + c_col)
        first = c_row * grid.chunks_per_cell
        last = min(first + grid.chunks_per_cell, grid.chunk_count)
        if grid.band_header is None:
            return np.concatenate([self._decode_chunk(level, i) for i in range(first, last)])
        # One JPEG of consecutive restart intervals: a single decoder call for the
        # band costs half as much as one call per 8-row strip.
        page = self._pages[level]
        start = int(page.dataoffsets[first])
        end = int(page.dataoffsets[last - 1]) + int(page.databytecounts[last - 1])
        data = os.pread(self._fd, end - start, start)
        if len(data) != end - start:
            raise SlideError("the slide file is shorter than its index says (truncated?)")
        rows = min((last - first) * grid.chunk_height, self.levels[level].height - first * grid.chunk_height)
        try:
            pixels = imagecodecs.jpeg8_decode(with_height(grid.band_header, rows) + data + EOI)
        except Exception as exc:
            raise SlideError(f"a part of the slide file cannot be decoded: {exc}") from exc
        return to_rgb(pixels.reshape(pixels.shape[0], pixels.shape[1], -1))

    def _decode_cell_half(self, level: int, c_row: int, c_col: int) -> np.ndarray:
        page, grid = self._pages[level], self._grids[level]
        if page.compression != JPEG or grid.chunks_per_cell != 1 or page.samplesperpixel != 3:
            # Through the cache: the level above usually wants the full cell too.
            return halve(self._cells.cell(level, c_row, c_col, self._decode_cell))

        index = c_row * grid.cells_across + c_col
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        if count == 0:
            return np.full((grid.cell_height // 2, grid.cell_width // 2, 3), 255, np.uint8)
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise SlideError("the slide file is shorter than its index says (truncated?)")
        try:
            half = decode_half(splice_tables(page.jpegtables, data, rgb=page.photometric == 2))
        except Exception as exc:
            raise SlideError(f"a part of the slide file cannot be decoded: {exc}") from exc
        return half if half is not None else halve(self._decode_cell(level, c_row, c_col))

    def native_jpeg(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> bytes | None:
        """The stored JPEG of one whole chunk, made standalone, when the region is exactly it."""
        page = self._pages[level]
        ch, cw = int(page.chunks[0]), int(page.chunks[1])
        if (
            page.compression != JPEG
            or page.is_ndpi
            or not page.is_tiled
            or (l_width, l_height) != (cw, ch)
            or l_x % cw
            or l_y % ch
            or l_x + cw > self.levels[level].width
            or l_y + ch > self.levels[level].height
            or page.samplesperpixel != 3
        ):
            return None
        index = (l_y // ch) * int(page.chunked[1]) + l_x // cw
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        if count == 0:
            return None
        data = os.pread(self._fd, count, offset)
        if len(data) != count or not data.startswith(b"\xff\xd8"):
            raise SlideError("the slide file is shorter than its index says (truncated?)")
        return splice_tables(page.jpegtables, data, rgb=page.photometric == 2)

    def verify(self) -> None:
        """Check that the file's index fits the file and a few chunks of each level decode."""
        if self.problems:
            raise SlideError(f"the slide file is damaged or truncated ({self.problems[0]})")
        for level, page in enumerate(self._pages):
            ends = np.asarray(page.dataoffsets, np.int64) + np.asarray(page.databytecounts, np.int64)
            if len(ends) and int(ends.max()) > self._file_size:
                raise SlideError("the slide file is truncated: its data ends before its index says")
            n = len(page.dataoffsets)
            for index in sorted({0, n // 2, n - 1}):
                self._decode_chunk(level, index)

    def associated_image(self, name: str) -> Image.Image:
        """A label, macro or thumbnail image stored in the file."""
        try:
            image = self._slide.associated_images[name]
        except KeyError:
            raise
        except Exception as exc:
            raise SlideError(f"the {name} image cannot be read: {exc}") from exc
        return image.convert("RGB")

    def close(self) -> None:
        """Release the file and its cached chunks."""
        self._cells.forget()
        self._finalizer()


def _release(fd: int, slide: tiffslide.TiffSlide) -> None:
    os.close(fd)
    slide.close()


@dataclass(frozen=True)
class _Grid(CellGrid):
    """How a level is cut into cached cells.

    A cell is one stored chunk, except in files stored as full-width strips (NDPI
    keeps 8-row strips): there a cell is a band of strips about 64 rows tall, so
    a tile touches five cached arrays instead of thirty-odd, and threads drawing
    one row of tiles can decode different bands at once.
    """

    cells_across: int
    chunks_per_cell: int
    chunk_count: int
    chunk_height: int
    # NDPI: the header that makes consecutive strips one JPEG (see _decode_cell).
    band_header: bytes | None

    @classmethod
    def of(cls, page: tifffile.TiffPage) -> _Grid:
        chunk_height, chunk_width = int(page.chunks[0]), int(page.chunks[1])
        cells_across = int(page.chunked[1])
        per_cell = max(1, BAND_ROWS // chunk_height) if cells_across == 1 else 1
        offsets = np.asarray(page.dataoffsets, np.int64)
        counts = np.asarray(page.databytecounts, np.int64)
        band_header = None
        if (
            page.is_ndpi
            and page.jpegheader
            # Restart markers count 0-7: a band must start at a multiple of 8 strips.
            and per_cell % 8 == 0
            and bool(np.all(offsets[1:] == offsets[:-1] + counts[:-1]))
        ):
            band_header = bytes(page.jpegheader)
        return cls(
            chunk_width,
            chunk_height * per_cell,
            cells_across,
            per_cell,
            len(offsets),
            chunk_height,
            band_header,
        )


class _Collect(logging.Handler):
    """Keeps the messages of warnings and errors logged while a file is opened."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into
        # Other threads may be opening other files at the same time.
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.into.append(record.getMessage().split("> ", 1)[-1])
