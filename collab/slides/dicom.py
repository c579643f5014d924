"""DICOM whole-slide images (VL Whole Slide Microscopy) via wsidicom."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from collab.slides.jpeg import mark_rgb
from collab.slides.reader import Level, SlideError, SlideProperties

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


class DicomReader:
    """A DICOM WSI series: every instance of it in one folder."""

    def __init__(self, path: Path) -> None:
        import wsidicom  # imported here: it is slow to import and only DICOM needs it

        folder = path if path.is_dir() else path.parent
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._wsi = wsidicom.WsiDicom.open(folder)
        except Exception as exc:
            raise SlideError(f"not a readable DICOM slide: {exc}") from exc
        # wsidicom shares file handles between levels; serialise access to them.
        self._lock = threading.Lock()
        self._levels = list(self._wsi.levels)
        if not self._levels:
            raise SlideError("the DICOM series has no image levels")
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
        tile = self._levels[0].tile_size
        self.l0_chunk_size = (int(tile.width), int(tile.height))

    def read_region(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> np.ndarray:
        """RGB pixels of a level region; outside the slide is white."""
        width, height = self.levels[level].width, self.levels[level].height
        out = np.full((l_height, l_width, 3), 255, np.uint8)
        x0, y0 = max(l_x, 0), max(l_y, 0)
        x1, y1 = min(l_x + l_width, width), min(l_y + l_height, height)
        if x0 >= x1 or y0 >= y1:
            return out
        try:
            with self._lock:
                image = self._wsi.read_region((x0, y0), self._levels[level].level, (x1 - x0, y1 - y0))
        except Exception as exc:
            raise SlideError(f"a part of the DICOM slide cannot be read: {exc}") from exc
        out[y0 - l_y : y1 - l_y, x0 - l_x : x1 - l_x] = np.asarray(image.convert("RGB"))
        return out

    def native_jpeg(self, level: int, l_x: int, l_y: int, l_width: int, l_height: int) -> bytes | None:
        """The stored JPEG frame when the region is exactly one whole frame."""
        lv = self._levels[level]
        tw, th = lv.tile_size.width, lv.tile_size.height
        instance = lv.default_instance
        if (
            str(instance.image_data.transfer_syntax) != JPEG_BASELINE
            or (l_width, l_height) != (tw, th)
            or l_x % tw
            or l_y % th
            or l_x + tw > self.levels[level].width
            or l_y + th > self.levels[level].height
        ):
            return None
        try:
            with self._lock:
                frame = self._wsi.read_encoded_tile(lv.level, (l_x // tw, l_y // th))
        except Exception as exc:
            raise SlideError(f"a part of the DICOM slide cannot be read: {exc}") from exc
        # DICOM pads odd-length frames with a zero byte after EOI.
        if frame.endswith(b"\xff\xd9\x00"):
            frame = frame[:-1]
        if str(instance.dataset.photometric_interpretation).startswith("YBR"):
            return frame
        return mark_rgb(frame)

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
        """Release the files."""
        self._wsi.close()
