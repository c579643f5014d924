"""Small DICOM whole-slide image series written with pydicom, for tests of DICOM pyramids that are
not simple: levels with their own frame of reference or origin, sparse tiling, missing frames.

``write_series`` writes one VL Whole Slide Microscopy instance per level, each a halving of the
one before, from a picture whose every tile has a colour of its own (so a tile shown in the wrong
place, or twice, is seen). Keyword arguments bend single levels out of shape.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    VLWholeSlideMicroscopyImageStorage,
    generate_uid,
)

BASE_SPACING_MM = 0.0005


@dataclass
class LevelSpec:
    """How one level is written; the defaults make a conformant TILED_FULL level."""

    # The tiles (column, row) that are written; None: all, TILED_FULL. Otherwise TILED_SPARSE
    # with a Plane Position (Slide) for each written frame.
    tiles: Collection[tuple[int, int]] | None = None
    # Frames left off the end of a TILED_FULL level (Number of Frames says what is there).
    missing_frames: int = 0
    # Number of Frames claims this many more frames than the pixel data holds.
    overclaimed_frames: int = 0
    # Frames (0-based) whose bytes are replaced by these.
    broken_frames: dict[int, bytes] = field(default_factory=dict)
    frame_of_reference: str | None = None  # None: the series'
    # Its picture upside down: what a level of another scan or registration shows.
    flipped: bool = False
    # Only this much of its picture (width, height), at the level's pixel spacing.
    crop: tuple[int, int] | None = None
    # Pixels added to the column of every Plane Position of a TILED_SPARSE level: off its grid.
    position_shift: int = 0
    # Written as a concatenation of this many instances (files), of which these are left out.
    parts: int = 1
    dropped_parts: tuple[int, ...] = ()
    # Total Pixel Matrix Origin (mm); None: the series'. "absent": the sequence is left out.
    origin: tuple[float, float] | str | None = None


def picture(width: int, height: int, tile: int) -> np.ndarray:
    """RGB pixels: every tile a flat colour of its own, with a darker band along its top."""
    pixels = np.empty((height, width, 3), np.uint8)
    for row in range(-(-height // tile)):
        for col in range(-(-width // tile)):
            colour = tile_colour(col, row)
            pixels[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = colour
            pixels[row * tile : row * tile + 4, col * tile : (col + 1) * tile] = [c // 2 for c in colour]
    return pixels


def tile_colour(col: int, row: int) -> tuple[int, int, int]:
    return (40 + 50 * col % 200, 60 + 45 * row % 180, 200 - 30 * ((col + row) % 5))


@dataclass
class Series:
    """What was written: the folder, the UIDs, and the pixels of each level."""

    folder: Path
    study: str
    series: str
    frame_of_reference: str
    levels: list[np.ndarray]
    files: list[Path]


def write_series(
    folder: Path,
    *,
    width: int = 256,
    height: int = 192,
    tile: int = 64,
    levels: int = 3,
    jpeg: bool = True,
    origin: tuple[float, float] | None = (10.0, 20.0),
    specs: dict[int, LevelSpec] | None = None,
    photometric: str | None = None,
    into: Series | None = None,
    name: str = "level",
) -> Series:
    """A series of ``levels`` levels, level ``i`` ``2**i`` times smaller than the base.

    ``into``: more instances of a series written before (its UIDs, a frame of reference of
    their own), in files named ``name-{level}.dcm``. ``photometric``: what JPEG frames are
    labelled (their scan is YCbCr, 4:4:4, unless it says RGB).
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = picture(width, height, tile)
    study, series, frame_of_reference = str(generate_uid()), str(generate_uid()), str(generate_uid())
    if into is not None:
        study, series = into.study, into.series
    pixels: list[np.ndarray] = []
    files = []
    for index in range(levels):
        scale = 2**index
        image = (
            base
            if index == 0
            else np.asarray(
                Image.fromarray(base).resize((-(-width // scale), -(-height // scale)), Image.Resampling.BOX)
            )
        )
        spec = (specs or {}).get(index, LevelSpec())
        if spec.flipped:
            image = np.ascontiguousarray(image[::-1])
        if spec.crop is not None:
            image = np.ascontiguousarray(image[: spec.crop[1], : spec.crop[0]])
        pixels.append(image)
        level_origin = spec.origin if spec.origin is not None else origin
        datasets = _level(
            image,
            tile,
            spec,
            study=study,
            series=series,
            frame_of_reference=spec.frame_of_reference or frame_of_reference,
            origin=level_origin,
            spacing=BASE_SPACING_MM * scale,
            instance_number=index + 1 + (len(into.files) if into else 0),
            jpeg=jpeg,
            photometric=photometric or ("YBR_FULL_422" if jpeg else "RGB"),
        )
        for part, dataset in enumerate(datasets):
            if part in spec.dropped_parts:
                continue
            path = folder / (f"{name}-{index}.dcm" if len(datasets) == 1 else f"{name}-{index}-{part}.dcm")
            dataset.save_as(path, enforce_file_format=True)
            files.append(path)
    return Series(folder, study, series, frame_of_reference, pixels, files)


def _level(
    image: np.ndarray,
    tile: int,
    spec: LevelSpec,
    *,
    study: str,
    series: str,
    frame_of_reference: str,
    origin: tuple[float, float] | str | None,
    spacing: float,
    instance_number: int,
    jpeg: bool,
    photometric: str,
) -> list[Dataset]:
    height, width = image.shape[:2]
    columns, rows = -(-width // tile), -(-height // tile)
    padded = np.full((rows * tile, columns * tile, 3), 255, np.uint8)
    padded[:height, :width] = image
    grid = [(col, row) for row in range(rows) for col in range(columns)]
    sparse = spec.tiles is not None
    written = [t for t in grid if t in set(spec.tiles)] if spec.tiles is not None else grid
    if spec.missing_frames:
        written = written[: len(written) - spec.missing_frames]
    frames = []
    for col, row in written:
        block = np.ascontiguousarray(padded[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile])
        if jpeg:
            out = io.BytesIO()
            keep_rgb = photometric == "RGB"
            Image.fromarray(block).save(out, "JPEG", quality=95, subsampling=0, keep_rgb=keep_rgb)
            frames.append(out.getvalue())
        else:
            frames.append(block.tobytes())
    for index, data in spec.broken_frames.items():
        frames[index] = data

    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = VLWholeSlideMicroscopyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian
    ds.SOPClassUID = VLWholeSlideMicroscopyImageStorage
    ds.SOPInstanceUID = uid
    ds.ImageType = ["ORIGINAL" if instance_number == 1 else "DERIVED", "PRIMARY", "VOLUME", "NONE"]
    ds.Modality = "SM"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = frame_of_reference
    ds.InstanceNumber = instance_number
    ds.PatientName = "Test^Slide"
    ds.PatientID = "T1"
    ds.ContainerIdentifier = "SLIDE_1"
    ds.DimensionOrganizationType = "TILED_SPARSE" if sparse else "TILED_FULL"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = 0
    ds.NumberOfFrames = len(frames) + spec.overclaimed_frames
    ds.Rows = ds.Columns = tile
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.TotalPixelMatrixColumns = width
    ds.TotalPixelMatrixRows = height
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 1
    ds.ImagedVolumeWidth = width * spacing
    ds.ImagedVolumeHeight = height * spacing
    ds.ImagedVolumeDepth = 0.0
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    if isinstance(origin, tuple):
        point = Dataset()
        point.XOffsetInSlideCoordinateSystem = origin[0]
        point.YOffsetInSlideCoordinateSystem = origin[1]
        ds.TotalPixelMatrixOriginSequence = [point]
    ds.ExtendedDepthOfField = "NO"
    ds.FocusMethod = "AUTO"
    path = Dataset()
    path.OpticalPathIdentifier = "0"
    illumination = Dataset()
    illumination.CodeValue, illumination.CodingSchemeDesignator = "111744", "DCM"
    illumination.CodeMeaning = "Brightfield illumination"
    path.IlluminationTypeCodeSequence = [illumination]
    colour = Dataset()
    colour.CodeValue, colour.CodingSchemeDesignator, colour.CodeMeaning = "414298005", "SCT", "Full Spectrum"
    path.IlluminationColorCodeSequence = [colour]
    ds.OpticalPathSequence = [path]
    measures = Dataset()
    measures.PixelSpacing = [spacing, spacing]
    measures.SliceThickness = 0.0
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    if sparse:
        per_frame = []
        for col, row in written:
            position = Dataset()
            position.ColumnPositionInTotalImagePixelMatrix = col * tile + 1 + spec.position_shift
            position.RowPositionInTotalImagePixelMatrix = row * tile + 1
            position.XOffsetInSlideCoordinateSystem = 0.0
            position.YOffsetInSlideCoordinateSystem = 0.0
            position.ZOffsetInSlideCoordinateSystem = 0.0
            item = Dataset()
            item.PlanePositionSlideSequence = [position]
            per_frame.append(item)
        ds.PerFrameFunctionalGroupsSequence = per_frame
    if jpeg:
        ds.LossyImageCompression = "01"
    if spec.parts == 1:
        _pixel_data(ds, frames, jpeg)
        return [ds]
    parts = []
    per_part = -(-len(frames) // spec.parts)
    concatenation = generate_uid()
    for part in range(spec.parts):
        piece = copy.deepcopy(ds)
        piece.SOPInstanceUID = piece.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        piece.ConcatenationUID = concatenation
        piece.SOPInstanceUIDOfConcatenationSource = uid
        piece.ConcatenationFrameOffsetNumber = part * per_part
        piece.InConcatenationNumber = part + 1
        piece.InConcatenationTotalNumber = spec.parts
        some = frames[part * per_part : (part + 1) * per_part]
        piece.NumberOfFrames = len(some)
        if sparse:
            piece.PerFrameFunctionalGroupsSequence = ds.PerFrameFunctionalGroupsSequence[
                part * per_part : (part + 1) * per_part
            ]
        _pixel_data(piece, some, jpeg)
        parts.append(piece)
    return parts


def _pixel_data(ds: Dataset, frames: list[bytes], jpeg: bool) -> None:
    ds.PixelData = encapsulate(frames, has_bot=True) if jpeg else b"".join(frames)
    ds["PixelData"].VR = "OB"
