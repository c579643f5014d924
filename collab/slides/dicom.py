"""DICOM whole-slide images (VL Whole Slide Microscopy) via wsidicom."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image

from collab.slides.cache import SizedLRU
from collab.slides.cells import CellCache, CellGrid, CellRegions, halve, to_rgb
from collab.slides.dicom_checks import (
    check_jpeg,
    check_stored_frames,
    choose_levels,
    explain_open_failure,
    frame_name,
    level_name,
    reason,
)
from collab.slides.jpeg import decode_half, mark_rgb
from collab.slides.reader import Level, SlideError, SlideProperties

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
# Frames a side fetched together from a PACS: its cost is per WADO-RS request, not per frame
# (Orthanc answers one frame or thirty in the same ~6 ms), and a viewer asks for neighbours next.
WEB_BLOCK_FRAMES = 4


class DicomReader(CellRegions):
    """A DICOM WSI series: every instance of it in one folder."""

    def __init__(
        self,
        path: Path,
        chunk_cache: SizedLRU[np.ndarray],
        *,
        wsi: Any = None,
        source: str = "the DICOM slide",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        import wsidicom  # imported here: it is slow to import and only DICOM needs it

        # ``wsi``: a series opened elsewhere (over DICOMweb, collab.slides.dicomweb); ``source``
        # names where its frames come from in a message.
        self._source = source
        self._on_close = on_close  # what else to release on close (a PACS client's connections)
        if wsi is not None:
            self._wsi = wsi
        else:
            folder = path if path.is_dir() else path.parent
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._wsi = wsidicom.WsiDicom.open(folder)
            except Exception as exc:
                why = explain_open_failure(folder) or f"not a readable DICOM slide: {exc}"
                raise SlideError(why) from exc
        # wsidicom shares file handles between levels; serialise access to them. Frames from a
        # PACS are fetched in blocks instead, several at once (wsidicom's web client is thread
        # safe): one waiting on the network must not hold up the others.
        self._web = wsi is not None
        self._lock = threading.Lock()
        self._file_lock = contextlib.nullcontext() if self._web else self._lock
        self._blocks_lock = threading.Lock()
        self._blocks: dict[tuple[int, int, int], threading.Event] = {}  # fetched or being fetched
        try:
            # The levels that line up with the full-resolution one (collab.slides.dicom_checks);
            # ``notes`` says why each of the others is left out.
            self._levels, notes = choose_levels(self._wsi, source)
            if wsi is None:
                check_stored_frames(self._levels, source)
        except Exception as exc:
            self._wsi.close()
            if isinstance(exc, SlideError):
                raise
            raise SlideError(f"{self._source} cannot be read: {reason(exc)}") from exc
        self.notes = tuple(notes)
        l0 = self._levels[0].size
        self.levels = tuple(
            Level(
                lv.size.width,
                lv.size.height,
                (l0.width / lv.size.width + l0.height / lv.size.height) / 2,
            )
            for lv in self._levels
        )
        mpp = self._wsi.mpp
        self.properties = SlideProperties(
            vendor="dicom",
            mpp_x=float(mpp.width) if mpp else None,
            mpp_y=float(mpp.height) if mpp else None,
            objective_power=None,
        )
        names = []
        if self._wsi.labels:
            names.append("label")
        if self._wsi.overviews:
            names.append("macro")
        self.associated_names = tuple(names)
        # The base level's identity, which annotations exported as DICOM reference.
        try:
            base = self._wsi.levels.base_level.datasets[0].uids
            self.dicom_uids: tuple[str, str, str, str] | None = (
                str(base.slide.study_instance),
                str(base.slide.series_instance),
                str(base.instance),
                str(base.slide.frame_of_reference or ""),
            )
        except (AttributeError, IndexError):
            self.dicom_uids = None
        tile = self._levels[0].tile_size
        self.l0_chunk_size = (int(tile.width), int(tile.height))
        self._grids = [CellGrid(lv.tile_size.width, lv.tile_size.height) for lv in self._levels]
        self._jpeg = [
            str(lv.default_instance.image_data.transfer_syntax) == JPEG_BASELINE for lv in self._levels
        ]
        self._rgb = [
            not str(lv.default_instance.dataset.photometric_interpretation).startswith("YBR")
            for lv in self._levels
        ]
        self._cells = CellCache(chunk_cache)

    def _frame(self, level: int, c_col: int, c_row: int) -> bytes:
        """A stored JPEG frame as it is. wsidicom would crop a frame at the right or bottom edge
        by decoding and re-encoding it, believing the file's colour label where we do not
        (collab.slides.jpeg.mark_rgb): the cells take whole frames instead. An absent frame of
        a sparse level is wsidicom's white one."""
        lv = self._levels[level]
        try:
            if self._web:
                self._fetch_block(level, c_col, c_row)
            with self._file_lock:
                # bytes: the DICOMweb client hands frames over as bytearrays.
                frame = bytes(
                    self._wsi.read_encoded_tile(lv.level, (c_col, c_row), crop_to_image_boundary=False)
                )
            check_jpeg(frame)
        except Exception as exc:
            raise self._unreadable(level, c_col, c_row, exc) from exc
        return mark_rgb(frame) if self._rgb[level] else frame

    def _fetch_block(self, level: int, c_col: int, c_row: int) -> None:
        """Bring the aligned block of frames around one into wsidicom's frame cache with one
        WADO-RS request, the first time any frame of the block is wanted; a thread wanting a
        frame of a block being fetched waits for that fetch rather than asking again. A frame
        the cache dropped since is fetched on its own by ``read_encoded_tile``."""
        key = (level, c_col // WEB_BLOCK_FRAMES, c_row // WEB_BLOCK_FRAMES)
        with self._blocks_lock:
            fetched = self._blocks.get(key)
            if fetched is None:
                fetched = self._blocks[key] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            fetched.wait()
            return
        try:
            from wsidicom.geometry import Point

            lv = self._levels[level]
            columns, rows = lv.tiled_size.width, lv.tiled_size.height
            points = [
                Point(col, row)
                for row in range(key[2] * WEB_BLOCK_FRAMES, min((key[2] + 1) * WEB_BLOCK_FRAMES, rows))
                for col in range(key[1] * WEB_BLOCK_FRAMES, min((key[1] + 1) * WEB_BLOCK_FRAMES, columns))
            ]
            # The instance (and so the frame cache) that read_encoded_tile reads from.
            instance = lv.get_instance()
            for _ in instance.image_data.get_encoded_tiles(points, instance.default_z, instance.default_path):
                pass
        except Exception:
            with self._blocks_lock:
                del self._blocks[key]  # a later request tries again
            raise
        finally:
            fetched.set()

    def _unreadable(self, level: int, c_col: int, c_row: int, exc: Exception) -> SlideError:
        lv = self._levels[level]
        return SlideError(
            f"{frame_name(lv, c_col, c_row)} of {level_name(lv)} of {self._source} cannot be read: "
            f"{reason(exc)}"
        )

    def _decode_cell(self, level: int, c_row: int, c_col: int) -> np.ndarray:
        """One frame, decoded by libjpeg-turbo where it is baseline JPEG, else by wsidicom."""
        if self._jpeg[level]:
            frame = self._frame(level, c_col, c_row)
            try:
                pixels = imagecodecs.jpeg8_decode(frame)
            except Exception as exc:
                raise self._unreadable(level, c_col, c_row, exc) from exc
        else:
            try:
                with self._file_lock:
                    tile = self._wsi.read_tile(self._levels[level].level, (c_col, c_row))
                pixels = np.asarray(tile.convert("RGB"))
            except Exception as exc:
                raise self._unreadable(level, c_col, c_row, exc) from exc
        return to_rgb(pixels.reshape(pixels.shape[0], pixels.shape[1], -1))

    def _decode_cell_half(self, level: int, c_row: int, c_col: int) -> np.ndarray:
        if not self._jpeg[level]:
            # Through the cache: the level above usually wants the full cell too.
            return halve(self._cells.cell(level, c_row, c_col, self._decode_cell))
        frame = self._frame(level, c_col, c_row)
        try:
            half = decode_half(frame)
        except Exception as exc:
            raise self._unreadable(level, c_col, c_row, exc) from exc
        return half if half is not None else halve(self._decode_cell(level, c_row, c_col))

    def native_jpeg(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> bytes | None:
        """The stored JPEG frame when the region is exactly one whole frame."""
        lv = self._levels[level]
        tw, th = lv.tile_size.width, lv.tile_size.height
        if (
            not self._jpeg[level]
            or (l_width, l_height) != (tw, th)
            or l_x % tw
            or l_y % th
            or l_x + tw > self.levels[level].width
            or l_y + th > self.levels[level].height
        ):
            return None
        frame = self._frame(level, l_x // tw, l_y // th)
        # DICOM pads odd-length frames with a zero byte after EOI.
        return frame[:-1] if frame.endswith(b"\xff\xd9\x00") else frame

    def verify(self) -> None:
        """Decode a corner of every level."""
        for level in range(len(self.levels)):
            self.read_region(level, 0, 0, 1, 1)

    def associated_image(self, name: str) -> Image.Image:
        """The label or overview (macro) image of the series."""
        with self._lock:
            if name == "label" and self._wsi.labels:
                return self._wsi.read_label().convert("RGB")
            if name == "macro" and self._wsi.overviews:
                return self._wsi.read_overview().convert("RGB")
        raise KeyError(name)

    def close(self) -> None:
        """Release the files and cached frames."""
        self._cells.forget()
        self._wsi.close()
        if self._on_close is not None:
            self._on_close()
