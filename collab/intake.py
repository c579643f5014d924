"""Slide files arriving from a browser upload or a scanner's import folder: checked exactly as
``collab slides add`` checks them, moved into the slide store, their label and barcode read.

Everything here blocks (big files, slide decoding): callers run it off the event loop.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from collab.slides import SlideError, check_slide, open_slide
from collab.slides.cache import SizedLRU

# What the upload page accepts: TIFF-family slides, or a DICOM series packed as a .zip.
UPLOAD_SUFFIXES = (".svs", ".ndpi", ".tif", ".tiff", ".zip")
# Files (and DICOM folders) the import folder is scanned for.
IMPORT_SUFFIXES = (".svs", ".ndpi", ".tif", ".tiff")
# A file changed this recently may still be being written by the scanner: taken on a later scan.
SETTLE_S = 30.0
LABEL_MAX_PX = 400


@dataclass(frozen=True)
class Inspection:
    """What a readable slide file says about itself."""

    width: int
    height: int
    vendor: str | None
    barcode: str | None
    has_label: bool


def inspect(path: Path) -> Inspection:
    """Check a slide as ``collab slides add`` does (SlideError if unusable), then read its label."""
    if path.is_file():
        with path.open("rb") as fh:
            # A lone DICOM instance is read with its whole folder: other uploads or imports.
            if fh.read(132)[128:132] == b"DICM":
                raise SlideError("a DICOM slide is a folder of files: pack the folder as a .zip")
    width, height, vendor = check_slide(path)
    reader = open_slide(path, SizedLRU(16 << 20))
    try:
        has_label = "label" in reader.associated_names
    finally:
        reader.close()
    return Inspection(width, height, vendor, read_barcode(path), has_label)


def read_barcode(path: Path) -> str | None:
    """The slide label's barcode as the file records it (Aperio ``Barcode``, DICOM BarcodeValue)."""
    try:
        if path.is_dir():
            import pydicom

            for member in sorted(path.iterdir())[:64]:
                if member.is_file():
                    data = pydicom.dcmread(member, stop_before_pixels=True, force=True)
                    value = str(data.get("BarcodeValue", "") or "").strip()
                    if value:
                        return value[:200]
            return None
        import tiffslide

        with tiffslide.TiffSlide(path) as slide:
            value = str(slide.properties.get("aperio.Barcode") or "").strip()
        return value[:200] or None
    except Exception:  # a barcode is a convenience; the slide was already checked
        return None


def label_jpeg(path: Path, max_px: int = LABEL_MAX_PX) -> bytes | None:
    """The slide's label image as a small JPEG, or None if it has none."""
    reader = open_slide(path, SizedLRU(16 << 20))
    try:
        if "label" not in reader.associated_names:
            return None
        image = reader.associated_image("label").convert("RGB")
    finally:
        reader.close()
    image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def store_upload(
    part: Path, filename: str, slides_dir: Path, store_name: str, max_bytes: int
) -> tuple[Path, Inspection]:
    """Check a finished upload and move it into the slide store; returns where it now lives.

    On refusal (SlideError) nothing is left behind: the partial file and anything unpacked are gone.
    """
    suffix = Path(filename).suffix.lower()
    slides_dir.mkdir(parents=True, exist_ok=True)
    unpacked = part.with_suffix(".unpacked")
    try:
        if suffix == ".zip":
            unpack_dicom_zip(part, unpacked, max_bytes)
            found = inspect(unpacked)
            target = slides_dir / store_name
            unpacked.rename(target)
        else:
            found = inspect(part)
            target = slides_dir / f"{store_name}{suffix}"
            part.rename(target)
        return target, found
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(unpacked, ignore_errors=True)


def unpack_dicom_zip(archive: Path, folder: Path, max_bytes: int) -> None:
    """Unpack a zip of DICOM instances flat into ``folder`` (names are never trusted as paths)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir()]
            if not members:
                raise SlideError("the .zip file is empty")
            if sum(m.file_size for m in members) > max_bytes:
                raise SlideError("the .zip file unpacks to more than the largest slide accepted")
            folder.mkdir()
            for number, member in enumerate(members):
                if stat.S_ISLNK(member.external_attr >> 16):
                    continue
                # A numbered flat name: "../" or absolute names in the archive go nowhere.
                with zipped.open(member) as source, (folder / f"{number:06d}.dcm").open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise SlideError(f"the .zip file is damaged: {exc}") from exc


@dataclass(frozen=True)
class Found:
    """A candidate slide in the import folder, identified by path, size and modification time."""

    path: Path
    file_size: int
    mtime_ns: int


def scan_import_dir(folder: Path, known: set[tuple[str, int, int]]) -> list[Found]:
    """Settled slide files and DICOM folders in ``folder`` not yet seen (as path + size + mtime)."""
    if not folder.is_dir():
        return []
    now_ns = time.time_ns()
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = [f for f in entry.iterdir() if f.is_file()]
            if not files:
                continue
            stats = [f.stat() for f in files]
            size, mtime_ns = sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)
        elif entry.is_file() and entry.suffix.lower() in IMPORT_SUFFIXES:
            info = entry.stat()
            size, mtime_ns = info.st_size, info.st_mtime_ns
        else:
            continue
        if now_ns - mtime_ns < SETTLE_S * 1e9:
            continue
        resolved = entry.resolve()
        if (str(resolved), size, mtime_ns) not in known:
            found.append(Found(resolved, size, mtime_ns))
    return found


def remove_slide_file(path: Path) -> None:
    """Remove a stored slide (a file, or a DICOM folder)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def file_identity(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a stored file or folder."""
    if path.is_dir():
        stats = [f.stat() for f in path.iterdir() if f.is_file()]
        return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns
