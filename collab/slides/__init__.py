"""Whole-slide images: open them safely, cut them into Deep Zoom tiles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from collab.slides.cache import SizedLRU
from collab.slides.dicomweb import DicomWebRef, open_dicomweb
from collab.slides.reader import Level, SlideError, SlideProperties, SlideReader

if TYPE_CHECKING:  # annotations only: a command-line call need not load numpy
    import numpy as np

__all__ = ["Level", "SlideError", "SlideProperties", "SlideReader", "check_slide", "open_slide"]


def _is_dicom(path: Path) -> bool:
    if path.is_dir():
        return True
    with path.open("rb") as fh:
        head = fh.read(132)
    return head[128:132] == b"DICM"


def open_slide(path: Path | DicomWebRef, chunk_cache: SizedLRU[np.ndarray]) -> SlideReader:
    """Open a slide file (or a folder of DICOM instances, or a series in a PACS) with the reader
    its format needs."""
    if isinstance(path, DicomWebRef):
        return open_dicomweb(path, chunk_cache)
    if not path.exists():
        raise SlideError("the slide file is missing")
    try:
        dicom = _is_dicom(path)
    except OSError as exc:
        raise SlideError(f"cannot read the file: {exc.strerror or exc}") from exc
    if dicom:
        from collab.slides.dicom import DicomReader

        return DicomReader(path, chunk_cache)
    from collab.slides.tiff import TiffReader

    return TiffReader(path, chunk_cache)


def check_slide(path: Path | DicomWebRef) -> tuple[int, int, str | None]:
    """Open and spot-check a slide; raises SlideError with a reason if it is unusable."""
    if isinstance(path, Path) and not path.exists():
        raise SlideError("the slide file is missing")
    if isinstance(path, Path) and not os.access(path, os.R_OK):
        raise SlideError("permission denied")
    reader = open_slide(path, SizedLRU(64 << 20))
    try:
        reader.verify()
        level0 = reader.levels[0]
        return level0.width, level0.height, reader.properties.vendor
    finally:
        reader.close()
