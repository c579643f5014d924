"""Checks of a DICOM whole-slide pyramid as wsidicom put it together, before any of it is shown.

wsidicom builds a pyramid from every instance of a series that lies at the same place on the
glass (Total Pixel Matrix Origin) and leaves the others in pyramids of their own, which collab
never shows; it does not compare frames of reference, and it takes a level's frames on trust.
What a pathologist must not be shown is tissue from another scan at one zoom, or a tile that is
not what was scanned there. So:

- a level that does not line up with the full-resolution level is left out, and the slide is
  served from the others (each left-out level is logged, with why): one whose frame of reference
  is not the full-resolution level's where the series shares frames of reference between levels,
  one that wsidicom put in another pyramid (another origin), one that covers another extent of
  the glass;
- the slide is refused when its full-resolution image itself is unclear: its instances disagree
  about their frame of reference, its smaller levels share one that it does not have, or the
  series holds another image as large elsewhere on the glass;
- the slide is refused when a level lacks frames (a TILED_FULL level holding fewer frames than
  its tiling needs, a concatenation missing a part, a file cut short) or places frames off its
  tile grid (TILED_SPARSE frames that wsidicom would move to the nearest tile).

Absent frames of a TILED_SPARSE level are background: wsidicom gives a white frame for them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from collab.slides.reader import SlideError

log = logging.getLogger("collab.slides.dicom")

# Leaving levels out must not leave a pyramid whose smallest level is too large to draw an
# overview from (every overview would read all of it).
MAX_SMALLEST_LEVEL_PX = 8192


def level_name(level: Any) -> str:
    """A level as a message names it: by its size, which a viewer of the series also shows."""
    return f"the {level.size.width} × {level.size.height} pixel level"


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, without the stream wsidicom names first; for
    a request the PACS refused, its answer (the address it gives is long and says nothing)."""
    response: Any = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status:
        return f"the server answered {status} {getattr(response, 'reason', '')}".rstrip()
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if text.startswith("WsiDicomReadIO(") and "): " in text:
        text = text.split("): ", 1)[1]
    short = re.search(r"contained less frames (\d+) than NumberOfFrames (\d+)", text)
    if short:
        text = f"it holds {short[1]} frames where its header lists {short[2]}: it is damaged or cut short"
    return text[:200]


def choose_levels(wsi: Any, source: str) -> tuple[list[Any], list[str]]:
    """The levels to serve, full resolution first, and a sentence for each level left out.

    SlideError when the full-resolution image is unclear or a level to serve lacks frames.
    """
    levels = list(wsi.levels)
    if not levels:
        raise SlideError("the DICOM series has no image levels")
    for level in levels:  # before any is left out: a level short of frames may look misplaced
        check_frames(level, source)
    base = levels[0]
    _refuse_rivals(wsi, base, source)
    kept, left_out, notes = [base], [], []
    foreign = _foreign_frames_of_reference(levels, source)
    for level in levels[1:]:
        why = foreign.get(id(level)) or _extent_difference(level, base)
        if why:
            left_out.append(level)
            notes.append(f"{level_name(level)} of {source} is left out: {why}.")
        else:
            kept.append(level)
    for level, note in _other_pyramids(wsi, base, source):
        left_out.append(level)
        notes.append(note)
    smallest = kept[-1].size
    if left_out and max(smallest.width, smallest.height) > MAX_SMALLEST_LEVEL_PX >= min(
        max(level.size.width, level.size.height) for level in left_out
    ):
        raise SlideError(
            f"{source} cannot be shown: its smaller levels do not line up with its full-resolution "
            f"level, and the smallest level that does, {smallest.width} × {smallest.height} pixels, "
            f"is too large to draw an overview from. {notes[0]}"
        )
    for note in notes:
        log.warning("%s", note)
    return kept, notes


def _frames_of_reference(level: Any) -> set[str]:
    """The frames of reference the level's instances state."""
    return {
        str(dataset.uids.slide.frame_of_reference)
        for dataset in level.datasets
        if dataset.uids.slide.frame_of_reference
    }


def _foreign_frames_of_reference(levels: list[Any], source: str) -> dict[int, str]:
    """Why each level (by id) whose frame of reference is not the base level's is left out.

    A frame of reference ties levels together only where the series shares one between them:
    some converters give every level one of its own (the shared CMU sample's does), and their
    levels still line up. There, nothing is left out for it; the origin
    (wsidicom) and the extent on the glass (``_extent_difference``) are what is checked.
    """
    base, others = levels[0], levels[1:]
    base_frames = _frames_of_reference(base)
    if len(base_frames) > 1:
        raise SlideError(
            f"the full-resolution level of {source} holds images with {len(base_frames)} different "
            f"frames of reference ({', '.join(sorted(base_frames))}): they come from different scans "
            "or registrations, and it is not clear which of them is the slide."
        )
    stated = [frame for level in levels for frame in _frames_of_reference(level)]
    if not base_frames or len(set(stated)) == len(stated):
        return {}
    [base_frame] = base_frames
    if not any(base_frame in _frames_of_reference(level) for level in others):
        shared = sorted({frame for frame in stated if stated.count(frame) > 1})
        raise SlideError(
            f"the full-resolution level of {source} has a frame of reference of its own ({base_frame}), "
            f"while its smaller levels share another ({', '.join(shared)}): it is not clear that the "
            "full-resolution level is the same scan as they are."
        )
    return {
        id(level): (
            f"its frame of reference ({', '.join(sorted(frames))}) is not the full-resolution "
            f"level's ({base_frame}), so it comes from another scan or registration and may not show "
            "the same tissue at the same place"
        )
        for level in others
        if (frames := _frames_of_reference(level) - {base_frame})
    }


def _extent_difference(level: Any, base: Any) -> str | None:
    """Why a level does not cover the part of the glass the base level covers, if it does not.

    A level's size is its base's divided and rounded: one level pixel either way is allowed.
    """
    spacing, base_spacing = level.pixel_spacing, base.pixel_spacing
    if spacing is None or base_spacing is None:
        return None
    width, height = level.size.width * spacing.width, level.size.height * spacing.height
    base_width = base.size.width * base_spacing.width
    base_height = base.size.height * base_spacing.height
    if (
        abs(width - base_width) <= 2 * spacing.width + 0.001 * base_width
        and abs(height - base_height) <= 2 * spacing.height + 0.001 * base_height
    ):
        return None
    return (
        f"it covers {width:.3g} × {height:.3g} mm of the glass where the full-resolution level "
        f"covers {base_width:.3g} × {base_height:.3g} mm, so it does not show the same tissue at the "
        "same place"
    )


def _refuse_rivals(wsi: Any, base: Any, source: str) -> None:
    """Refuse a series that holds another image as large as the base, elsewhere on the glass:
    which of the two is shown would depend on the order the files or the PACS list them in."""
    for pyramid in wsi.pyramids:
        other = pyramid.base_level
        if other is base or other.size != base.size:
            continue
        if _same_place(other, base):
            continue  # the same place, another focus (extended depth of field): either will do
        raise SlideError(
            f"{source} holds two full-resolution images of {base.size.width} × {base.size.height} "
            "pixels that are not at the same place on the glass: it is not clear which of them is "
            "the slide."
        )


def _placing(level: Any, base: Any) -> tuple[Any, Any]:
    """Where on the glass the level and the base say they lie (None where one does not say)."""
    return level.default_instance.image_coordinate_system, base.default_instance.image_coordinate_system


def _same_place(level: Any, base: Any) -> bool:
    here, there = _placing(level, base)
    if here is None or there is None:
        return here is None and there is None
    return bool(here.origin_and_rotation_match(there, origin_threshold=0.02))


def _other_pyramids(wsi: Any, base: Any, source: str) -> Iterable[tuple[Any, str]]:
    """Each level wsidicom left out of the pyramid served, and a sentence saying why."""
    for pyramid in wsi.pyramids:
        if pyramid.base_level is base:
            continue
        for level in pyramid.levels:
            if _same_place(level, base):
                why = "it is an image of another focus (extended depth of field)"
            else:
                why = _origin_difference(level, base)
            yield level, f"{level_name(level)} of {source} is left out: {why}."


def _origin_difference(level: Any, base: Any) -> str:
    here, there = _placing(level, base)
    if here is None or there is None:
        which = "it does" if here is None else "the full-resolution level does"
        return f"{which} not say where on the glass it lies, so the two cannot be lined up"
    if here.rotation != there.rotation:
        return (
            f"it is turned by {here.rotation:g}° on the glass, "
            f"the full-resolution level by {there.rotation:g}°"
        )
    dx, dy = here.origin.x - there.origin.x, here.origin.y - there.origin.y
    return (
        f"it lies {float(np.hypot(dx, dy)):.3g} mm away from the full-resolution level on the glass "
        "(Total Pixel Matrix Origin), so it does not show the same tissue at the same place"
    )


def check_frames(level: Any, source: str) -> None:
    """Refuse a level whose frames do not fill its tiling, or sit off its tile grid."""
    from wsidicom.instance.tile_index.sparse_tile_index import SparseTileIndex

    tile = level.tile_size
    for instance in level.instances.values():
        for dataset in instance.datasets:
            stated = _stated_size(dataset)
            if stated is not None and stated != (level.size.width, level.size.height):
                # wsidicom takes a level of one frame to be one tile large, whatever it states.
                columns, rows = -(-stated[0] // tile.width), -(-stated[1] // tile.height)
                held = dataset.frame_count
                raise SlideError(
                    f"the {stated[0]} × {stated[1]} pixel level of {source} holds {held} "
                    f"frame{'s' * (held != 1)} where its {columns} × {rows} tiles need at least "
                    f"{columns * rows}: frames are missing from the series."
                )
        tiles = instance.image_data.tiles
        if isinstance(tiles, SparseTileIndex):
            _check_sparse(level, instance, source)
            continue
        needed = tiles.tiled_size.area * len(tiles.focal_planes) * len(tiles.optical_paths)
        held = sum(dataset.frame_count for dataset in instance.datasets)
        if held != needed:
            grid = f"{tiles.tiled_size.width} × {tiles.tiled_size.height}"
            what = "frames are missing from the series" if held < needed else "they do not fit its tiling"
            raise SlideError(
                f"{level_name(level)} of {source} holds {held} frames where its {grid} tiles "
                f"need {needed}: {what}."
            )


def _stated_size(dataset: Any) -> tuple[int, int] | None:
    """The size the instance states (wsidicom's may differ: see ``check_frames``)."""
    raw: Any = getattr(dataset, "_dataset", None)
    try:
        return int(raw.TotalPixelMatrixColumns), int(raw.TotalPixelMatrixRows)
    except (AttributeError, TypeError, ValueError):
        return None


def _check_sparse(level: Any, instance: Any, source: str) -> None:
    tile = level.tile_size
    for dataset in instance.datasets:
        try:
            positions = dataset.frame_positions
        except Exception as exc:  # wsidicom raises its own kinds for unreadable positions
            raise SlideError(
                f"the frame positions of {level_name(level)} of {source} cannot be read: {reason(exc)}"
            ) from exc
        off = ((positions.columns - 1) % tile.width != 0) | ((positions.rows - 1) % tile.height != 0)
        if off.any():
            frame = int(off.argmax())
            raise SlideError(
                f"{int(off.sum())} frames of {level_name(level)} of {source} are not placed on its "
                f"grid of {tile.width} × {tile.height} pixel tiles (frame {dataset.frame_offset + frame + 1} "
                f"starts at column {positions.columns[frame]}, row {positions.rows[frame]}): "
                "collab cannot show them where they were scanned."
            )


def check_stored_frames(levels: Iterable[Any], source: str) -> None:
    """For a series read from files: every frame of every level is in its file."""
    for level in levels:
        for instance in level.instances.values():
            for reader in getattr(instance.image_data, "_readers", ()):
                name = Path(str(reader.filepath)).name
                try:
                    index = reader.frame_index
                    size = reader.filepath.stat().st_size
                except Exception as exc:  # wsidicom raises its own kinds for damaged pixel data
                    raise SlideError(
                        f"the frames of {level_name(level)} of {source} cannot be found in its file "
                        f"{name}: {reason(exc)}"
                    ) from exc
                ends = [position + length for position, length in index]
                if ends and max(ends) > size:
                    frame = int(np.argmax(ends))
                    raise SlideError(
                        f"the file {name} of {level_name(level)} of {source} is cut short: frame "
                        f"{reader.frame_offset + frame + 1} would end at byte {max(ends)} of a file of "
                        f"{size} bytes."
                    )


def frame_name(level: Any, c_col: int, c_row: int) -> str:
    """A frame as a message names it: its number in the instance (from 1, as DICOM counts)."""
    place = f"column {c_col + 1}, row {c_row + 1}"
    try:
        from wsidicom.geometry import Point

        data = level.default_instance.image_data
        index = data.tiles.get_frame_index(Point(c_col, c_row), data.default_z, data.default_path)
        return f"frame {index + 1} ({place})"
    except Exception:
        return f"the frame at {place}"


def check_jpeg(frame: bytes) -> None:
    """Raise ValueError for a stored JPEG frame that does not begin and end as one must: cut
    short, libjpeg-turbo would decode what it has and fill the rest with grey."""
    if not frame.startswith(b"\xff\xd8"):
        raise ValueError("it is not a JPEG image")
    if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ValueError("it is cut short (it has no JPEG end marker)")
    if b"\xff\xda" not in frame:
        raise ValueError("it holds no image (it has no JPEG scan)")


def explain_open_failure(folder: Path) -> str | None:
    """Why wsidicom would not open a folder, when the cause is a level that lacks frames:
    named by its file, in a sentence (wsidicom says it in its own terms)."""
    import pydicom

    for path in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            if "VOLUME" not in ds.ImageType or ds.get("DimensionOrganizationType") != "TILED_FULL":
                continue
            if "ConcatenationUID" in ds:
                continue
            width, height = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
            columns, rows = -(-width // int(ds.Columns)), -(-height // int(ds.Rows))
            planes = int(ds.get("TotalPixelMatrixFocalPlanes", 1)) * int(ds.get("NumberOfOpticalPaths", 1))
            held = int(ds.get("NumberOfFrames", 1))
        except Exception:  # not a readable WSI instance: not the one that explains it
            continue
        needed = columns * rows * planes
        if held != needed:
            what = "frames are missing from the series" if held < needed else "they do not fit its tiling"
            return (
                f"the {width} × {height} pixel level in {path.name} holds {held} frames where its "
                f"{columns} × {rows} tiles need {needed}: {what}."
            )
    return None
