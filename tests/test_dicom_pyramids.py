"""DICOM whole-slide pyramids that are not simple, on real DICOM files written by the test
(tests/dicom_wsi.py): levels of another frame of reference or placed elsewhere on the glass are
left out and the slide served from the others, or the slide is refused where its full-resolution
image is unclear; absent tiles of a sparse level are white; missing, cut-short and undecodable
frames are refused, at open time where it can be told then, with a message naming the level
(and the frame)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from collab.slides import open_slide
from collab.slides.cache import SizedLRU
from collab.slides.deepzoom import DeepZoomSlide
from collab.slides.dicom import DicomReader
from collab.slides.dicomweb import DicomWebRef, open_dicomweb
from collab.slides.reader import SlideError, SlideReader
from tests.conftest import Server, add_slides, collab
from tests.dicom_wsi import LevelSpec, picture, write_series
from tests.orthanc import available, new_orthanc

SHARED = Path(__file__).resolve().parents[2] / "shared" / "slides"
CMU = SHARED / "dicom-cmu-1-small-region"
TILE = 64


def _open(folder: Path) -> SlideReader:
    return open_slide(folder, SizedLRU(64 << 20))


def _notes(reader: SlideReader) -> list[str]:
    """Why each level the reader leaves out is left out."""
    assert isinstance(reader, DicomReader)
    return list(reader.notes)


def _refusal(folder: Path) -> str:
    with pytest.raises(SlideError) as refused:
        _open(folder)
    return str(refused.value)


def _tile_png(reader: SlideReader, folder: Path, z_level: int, col: int = 0, row: int = 0) -> np.ndarray:
    slide = DeepZoomSlide("0123456789abcdef", folder, reader)
    body = slide.tile(z_level, col, row, "png")
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)


def _halved(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).reduce(2)).astype(int)


# -- levels that do not line up with the full-resolution level -----------------------------


def test_a_level_of_another_frame_of_reference_is_left_out_and_served_from_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Level 1 comes from another registration: its picture is upside down. Levels 0 and 2 share
    # theirs, so the series ties its levels together by their frame of reference.
    series = write_series(tmp_path, specs={1: LevelSpec(frame_of_reference="1.2.3.4", flipped=True)})
    with caplog.at_level(logging.WARNING, logger="collab.slides.dicom"):
        reader = _open(tmp_path)
    try:
        assert [(lv.width, lv.height) for lv in reader.levels] == [(256, 192), (64, 48)]
        [note] = _notes(reader)
        assert note == (
            "the 128 × 96 pixel level of the DICOM slide is left out: its frame of reference (1.2.3.4) "
            f"is not the full-resolution level's ({series.frame_of_reference}), so it comes from "
            "another scan or registration and may not show the same tissue at the same place."
        )
        assert note in caplog.text
        # Deep Zoom level 7 is 128 × 96: drawn from the full-resolution level, not the stray one.
        tile = _tile_png(reader, tmp_path, 7)
        assert tile.shape == (96, 128, 3)
        assert np.abs(tile - _halved(series.levels[0])).mean() < 3
        assert np.abs(tile - series.levels[1]).mean() > 20  # what the stray level would show
    finally:
        reader.close()


def test_levels_each_with_a_frame_of_reference_of_its_own_are_kept(tmp_path: Path) -> None:
    # As some converters write them (the shared CMU sample): the frames of reference tie nothing.
    specs = {index: LevelSpec(frame_of_reference=f"1.2.3.{index}") for index in range(3)}
    write_series(tmp_path, specs=specs)
    reader = _open(tmp_path)
    try:
        assert len(reader.levels) == 3
        assert _notes(reader) == []
    finally:
        reader.close()


def test_a_level_covering_another_extent_of_the_glass_is_left_out(tmp_path: Path) -> None:
    specs = {index: LevelSpec(frame_of_reference=f"1.2.3.{index}") for index in range(3)}
    specs[1].crop = (100, 96)  # 0.1 mm wide where the full-resolution level is 0.128 mm
    series = write_series(tmp_path, specs=specs)
    reader = _open(tmp_path)
    try:
        assert [(lv.width, lv.height) for lv in reader.levels] == [(256, 192), (64, 48)]
        assert _notes(reader) == [
            "the 100 × 96 pixel level of the DICOM slide is left out: it covers 0.1 × 0.096 mm of the "
            "glass where the full-resolution level covers 0.128 × 0.096 mm, so it does not show the "
            "same tissue at the same place."
        ]
        assert np.abs(_tile_png(reader, tmp_path, 7) - _halved(series.levels[0])).mean() < 3
    finally:
        reader.close()


def test_a_full_resolution_level_whose_smaller_levels_share_another_frame_is_refused(
    tmp_path: Path,
) -> None:
    write_series(tmp_path, specs={0: LevelSpec(frame_of_reference="1.2.3.4")})
    message = _refusal(tmp_path)
    assert message.startswith(
        "the full-resolution level of the DICOM slide has a frame of reference of its own (1.2.3.4), "
        "while its smaller levels share another ("
    )
    assert message.endswith("it is not clear that the full-resolution level is the same scan as they are.")


def test_a_level_elsewhere_on_the_glass_is_left_out_with_the_distance_said(tmp_path: Path) -> None:
    series = write_series(tmp_path, specs={1: LevelSpec(origin=(11.5, 20.0), flipped=True)})
    reader = _open(tmp_path)
    try:
        assert [(lv.width, lv.height) for lv in reader.levels] == [(256, 192), (64, 48)]
        assert _notes(reader) == [
            "the 128 × 96 pixel level of the DICOM slide is left out: it lies 1.5 mm away from "
            "the full-resolution level on the glass (Total Pixel Matrix Origin), so it does not "
            "show the same tissue at the same place."
        ]
        assert np.abs(_tile_png(reader, tmp_path, 7) - _halved(series.levels[0])).mean() < 3
    finally:
        reader.close()


def test_a_level_that_does_not_say_where_it_lies_is_left_out(tmp_path: Path) -> None:
    write_series(tmp_path, specs={2: LevelSpec(origin="absent")})
    reader = _open(tmp_path)
    try:
        assert [(lv.width, lv.height) for lv in reader.levels] == [(256, 192), (128, 96)]
        assert "it does not say where on the glass it lies" in _notes(reader)[0]
    finally:
        reader.close()


def test_a_full_resolution_level_of_two_frames_of_reference_is_refused(tmp_path: Path) -> None:
    series = write_series(tmp_path)
    # Another full-size image in the series, at the same place but of another registration.
    write_series(tmp_path, into=series, name="rescan", levels=1)
    message = _refusal(tmp_path)
    assert message.startswith(
        "the full-resolution level of the DICOM slide holds images with 2 different frames of reference"
    )
    assert message.endswith("it is not clear which of them is the slide.")


def test_two_full_resolution_images_at_different_places_are_refused(tmp_path: Path) -> None:
    series = write_series(tmp_path)
    write_series(
        tmp_path,
        into=series,
        name="region-2",
        levels=2,
        specs={
            0: LevelSpec(frame_of_reference=series.frame_of_reference, origin=(14.0, 20.0)),
            1: LevelSpec(frame_of_reference=series.frame_of_reference, origin=(14.0, 20.0)),
        },
    )
    assert _refusal(tmp_path) == (
        "the DICOM slide holds two full-resolution images of 256 × 192 pixels that are not at the "
        "same place on the glass: it is not clear which of them is the slide."
    )


def test_leaving_levels_out_may_not_leave_only_a_level_too_large_to_overview(tmp_path: Path) -> None:
    elsewhere = LevelSpec(origin=(12.0, 20.0))
    write_series(tmp_path, width=8256, height=64, levels=3, specs={1: elsewhere, 2: elsewhere})
    message = _refusal(tmp_path)
    assert message.startswith(
        "the DICOM slide cannot be shown: its smaller levels do not line up with its full-resolution "
        "level, and the smallest level that does, 8256 × 64 pixels, is too large to draw an overview "
        "from. the 4128 × 32 pixel level"
    )


def _cmu_copy(tmp_path: Path, frames: dict[str, str]) -> Path:
    """The shared CMU series, with new frames of reference for the levels (file name prefixes)."""
    folder = tmp_path / "cmu"
    shutil.copytree(CMU, folder)
    for path in folder.iterdir():
        path.chmod(0o644)
        for prefix, frame in frames.items():
            if path.name.startswith(prefix):
                data = pydicom.dcmread(path)
                data.FrameOfReferenceUID = frame
                data.save_as(path)
    return folder


@pytest.mark.skipif(not CMU.is_dir(), reason="../shared/slides is not here")
def test_a_real_series_keeps_its_levels_and_leaves_out_one_of_another_frame(tmp_path: Path) -> None:
    original = _open(CMU)  # each level has a frame of reference of its own: all are kept
    # Its levels 0 and 1 given one frame of reference, level 2 another.
    shared, stray = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    folder = _cmu_copy(tmp_path, {"level-0-": shared, "level-1-": shared, "level-2-": stray})
    reader = _open(folder)
    try:
        sizes = [(lv.width, lv.height) for lv in original.levels]
        assert len(sizes) == 3  # wsidicom keeps the levels of the series' tile size: 0, 1 and 2
        assert [(lv.width, lv.height) for lv in reader.levels] == sizes[:2]
        assert _notes(original) == []
        assert _notes(reader)[0].startswith(
            f"the {sizes[2][0]} × {sizes[2][1]} pixel level of the DICOM slide is left out: its frame "
            f"of reference ({stray})"
        )
        # The Deep Zoom level of that size is drawn from the level above it, and matches.
        geometry = DeepZoomSlide("0123456789abcdef", CMU, original).geometry
        z_level = next(
            z
            for z, (w, h) in enumerate(geometry.z_dimensions)
            if abs(w - sizes[2][0]) <= 1 and abs(h - sizes[2][1]) <= 1
        )
        ours, theirs = _tile_png(reader, folder, z_level), _tile_png(original, CMU, z_level)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).mean() < 4
    finally:
        reader.close()
        original.close()


# -- sparse tiling ------------------------------------------------------------------------------

PRESENT = [(0, 0), (1, 0), (2, 1), (3, 2)]


@pytest.mark.parametrize(
    "options",
    [{"jpeg": True}, {"jpeg": True, "photometric": "RGB"}, {"jpeg": False}],
    ids=["jpeg-ycbcr", "jpeg-rgb", "uncompressed"],
)
def test_absent_tiles_of_a_sparse_level_are_white_and_present_ones_their_own(
    tmp_path: Path, options: dict[str, object]
) -> None:
    series = write_series(tmp_path, specs={0: LevelSpec(tiles=PRESENT)}, **options)  # type: ignore[arg-type]
    reader = _open(tmp_path)
    try:
        whole = reader.read_region(0, 0, 0, 256, 192).astype(int)
        half = reader.read_region_half(0, 0, 0, 256, 192).astype(int)
        scanned = series.levels[0].astype(int)
        for row in range(3):
            for col in range(4):
                cell = np.s_[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
                half_cell = np.s_[row * 32 : (row + 1) * 32, col * 32 : (col + 1) * 32]
                if (col, row) in PRESENT:
                    assert np.abs(whole[cell] - scanned[cell]).mean() < 2, (col, row)
                    assert np.abs(half[half_cell] - _halved(series.levels[0])[half_cell]).mean() < 3
                else:
                    assert (whole[cell] == 255).all(), (col, row)
                    assert (half[half_cell] == 255).all(), (col, row)
                stored = reader.native_jpeg(0, col * TILE, row * TILE, TILE, TILE)
                if stored is not None:  # what a browser is sent for a full-resolution tile
                    shown = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB")).astype(int)
                    expected = scanned[cell] if (col, row) in PRESENT else 255
                    assert np.abs(shown - expected).mean() < 2, (col, row)
        # Deep Zoom tiles across present and absent tiles alike.
        tile = _tile_png(reader, tmp_path, 8)  # 254 + 1 overlap pixels wide
        assert (tile[TILE:128, 0:TILE] == 255).all()
        assert np.abs(tile[0:TILE, 0:128] - scanned[0:TILE, 0:128]).mean() < 2
    finally:
        reader.close()


def test_sparse_frames_placed_off_the_tile_grid_are_refused(tmp_path: Path) -> None:
    # wsidicom would move each frame to the tile it starts in: 10 pixels off where it was scanned.
    write_series(tmp_path, specs={0: LevelSpec(tiles=PRESENT, position_shift=10)})
    assert _refusal(tmp_path) == (
        "4 frames of the 256 × 192 pixel level of the DICOM slide are not placed on its grid of "
        "64 × 64 pixel tiles (frame 1 starts at column 11, row 1): collab cannot show them where "
        "they were scanned."
    )


# -- missing frames -----------------------------------------------------------------------------


def test_a_tiled_full_level_short_of_frames_is_refused_naming_its_file(tmp_path: Path) -> None:
    write_series(tmp_path, specs={1: LevelSpec(missing_frames=1)})
    assert _refusal(tmp_path) == (
        "the 128 × 96 pixel level in level-1.dcm holds 3 frames where its 2 × 2 tiles need 4: "
        "frames are missing from the series."
    )


def test_a_level_of_a_single_frame_is_refused_not_shrunk_to_one_tile(tmp_path: Path) -> None:
    # wsidicom takes a level holding one frame to be one tile large, whatever size it states.
    write_series(tmp_path, specs={0: LevelSpec(missing_frames=11)})
    assert _refusal(tmp_path) == (
        "the 256 × 192 pixel level of the DICOM slide holds 1 frame where its 4 × 3 tiles need at "
        "least 12: frames are missing from the series."
    )


def test_a_concatenation_missing_a_part_is_refused(tmp_path: Path) -> None:
    write_series(tmp_path, specs={0: LevelSpec(parts=3, dropped_parts=(1,))})
    assert _refusal(tmp_path) == (
        "the 256 × 192 pixel level of the DICOM slide holds 8 frames where its 4 × 3 tiles need 12: "
        "frames are missing from the series."
    )


def test_pixel_data_holding_fewer_frames_than_its_header_is_refused(tmp_path: Path) -> None:
    write_series(tmp_path, specs={0: LevelSpec(missing_frames=2, overclaimed_frames=2)})
    assert _refusal(tmp_path) == (
        "the frames of the 256 × 192 pixel level of the DICOM slide cannot be found in its file "
        "level-0.dcm: it holds 10 frames where its header lists 12: it is damaged or cut short"
    )


def test_a_file_cut_short_is_refused(tmp_path: Path) -> None:
    series = write_series(tmp_path)
    data = series.files[0].read_bytes()
    series.files[0].write_bytes(data[:-300])  # into the last frame: it decoded partly grey
    message = _refusal(tmp_path)
    assert message.startswith("the file level-0.dcm of the 256 × 192 pixel level of the DICOM slide is cut ")
    assert "short: frame 12 would end at byte" in message


def _cut_short() -> bytes:
    """Frame 6 of level 0 (column 2, row 2) with its last fifth gone: libjpeg-turbo decodes it
    without a word, the missing part grey."""
    out = io.BytesIO()
    Image.fromarray(picture(256, 192, TILE)[TILE:128, TILE:128]).save(out, "JPEG", quality=95)
    return out.getvalue()[: len(out.getvalue()) * 4 // 5]


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"not a JPEG", "it is not a JPEG image"),
        (b"\xff\xd8\xff\xd9", "it holds no image (it has no JPEG scan)"),
        (None, "it is cut short (it has no JPEG end marker)"),
    ],
    ids=["garbage", "empty", "cut-short"],
)
def test_an_unreadable_frame_gives_an_error_naming_its_level_and_frame(
    tmp_path: Path, frame: bytes | None, why: str
) -> None:
    broken = frame if frame is not None else _cut_short()
    series = write_series(tmp_path, specs={0: LevelSpec(broken_frames={5: broken})})
    reader = _open(tmp_path)  # opens: the frame is only read when asked for
    expected = (
        f"frame 6 (column 2, row 2) of the 256 × 192 pixel level of the DICOM slide cannot be read: {why}"
    )
    try:
        for read in (
            lambda: reader.read_region(0, 70, 70, 10, 10),
            lambda: reader.read_region_half(0, 64, 64, 64, 64),
            lambda: reader.native_jpeg(0, 64, 64, 64, 64),
            lambda: _tile_png(reader, tmp_path, 8),
        ):
            with pytest.raises(SlideError) as refused:
                read()
            assert str(refused.value) == expected
        # The rest of the level is served.
        assert np.abs(reader.read_region(0, 0, 0, 64, 64).astype(int) - series.levels[0][:64, :64]).mean() < 2
    finally:
        reader.close()


def test_a_tile_over_an_unreadable_frame_answers_503_saying_which(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "slide"
    write_series(folder, specs={0: LevelSpec(broken_frames={5: _cut_short()})})
    [slide_id] = add_slides(server.data_dir, folder)  # its check reads the corner of each level
    response = server.get(f"/slides/{slide_id}_files/8/0_0.jpeg")
    assert response.status_code == 503
    assert response.text == (
        "This part of the slide cannot be read: frame 6 (column 2, row 2) of the 256 × 192 pixel "
        "level of the DICOM slide cannot be read: it is cut short (it has no JPEG end marker)\n"
    )
    assert server.get(f"/slides/{slide_id}_files/7/0_0.jpeg").status_code == 200  # from level 1


def test_adding_a_series_short_of_frames_is_refused_with_the_reason(
    data_dir: Path, case: str, tmp_path: Path
) -> None:
    write_series(tmp_path / "short", specs={1: LevelSpec(missing_frames=1)})
    added = collab("slides", "add", str(tmp_path / "short"), "--case", case, data_dir=data_dir)
    assert added.returncode != 0
    assert (
        "the 128 × 96 pixel level in level-1.dcm holds 3 frames where its 2 × 2 tiles need 4" in added.stderr
    )


# -- over DICOMweb ------------------------------------------------------------------------------


@pytest.mark.skipif(not available(), reason="Orthanc with its DICOMweb plugin is not installed")
def test_over_dicomweb_a_stray_level_is_left_out_and_a_failed_frame_fetch_is_named(tmp_path: Path) -> None:
    orthanc = new_orthanc(tmp_path / "orthanc")
    try:
        series = write_series(
            tmp_path / "slide", specs={1: LevelSpec(frame_of_reference="1.2.3.4", flipped=True)}
        )
        single = write_series(tmp_path / "single", specs={1: LevelSpec(missing_frames=3)})
        orthanc.upload(series.folder)
        orthanc.upload(single.folder)
        reader = open_dicomweb(DicomWebRef(orthanc.dicomweb, series.study, series.series), SizedLRU(64 << 20))
        try:
            assert [(lv.width, lv.height) for lv in reader.levels] == [(256, 192), (64, 48)]
            assert "the 128 × 96 pixel level of the PACS at" in _notes(reader)[0]
            # The full-resolution instance goes from the PACS after the slide was opened.
            uid = str(pydicom.dcmread(series.files[0], stop_before_pixels=True).SOPInstanceUID)
            [found] = httpx.post(f"{orthanc.url}/tools/lookup", content=uid).json()
            assert httpx.delete(f"{orthanc.url}/instances/{found['ID']}").status_code == 200
            with pytest.raises(SlideError) as refused:
                reader.read_region(0, 128, 128, 64, 64)
            assert str(refused.value) == (
                f"frame 11 (column 3, row 3) of the 256 × 192 pixel level of the PACS at "
                f"127.0.0.1:{orthanc.port} cannot be read: the server answered 404 Not Found"
            )
        finally:
            reader.close()
        # The refusal is still held (as a log or a 503 holds it): it may not hold a connection.
        assert refused.value is not None and _sockets_to(orthanc.port) == 0
        with pytest.raises(SlideError) as refused:
            open_dicomweb(DicomWebRef(orthanc.dicomweb, single.study, single.series), SizedLRU(64 << 20))
        assert str(refused.value) == (
            f"the 128 × 96 pixel level of the PACS at 127.0.0.1:{orthanc.port} holds 1 frame where "
            "its 2 × 2 tiles need at least 4: frames are missing from the series."
        )
    finally:
        orthanc.stop()


@pytest.mark.skipif(not available(), reason="Orthanc with its DICOMweb plugin is not installed")
def test_over_dicomweb_frames_asked_for_at_once_each_come_back_as_their_own(tmp_path: Path) -> None:
    """Frames come from the PACS a block at a time, fetched once however many threads want
    them: every frame of every level, asked for from eight threads in a shuffled order, is the
    file's own (blocks at the edges are cut to the level; one level is sparse)."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    sparse = {(col, row) for col in range(8) for row in range(6) if (col + row) % 3}  # of 8 × 6
    series = write_series(
        tmp_path / "slide", width=1000, height=700, tile=TILE, levels=3, specs={1: LevelSpec(tiles=sparse)}
    )
    orthanc = new_orthanc(tmp_path / "orthanc")
    try:
        orthanc.upload(series.folder)
        on_disk = _open(series.folder)
        in_pacs = open_dicomweb(
            DicomWebRef(orthanc.dicomweb, series.study, series.series), SizedLRU(64 << 20)
        )
        try:
            frames = [
                (level, col * TILE, row * TILE)
                for level, size in enumerate(on_disk.levels)
                for col in range(size.width // TILE)
                for row in range(size.height // TILE)
            ]
            random.Random(7).shuffle(frames)
            with ThreadPoolExecutor(8) as pool:
                got = list(pool.map(lambda f: in_pacs.native_jpeg(*f, TILE, TILE), frames))
            want = [on_disk.native_jpeg(*f, TILE, TILE) for f in frames]
            assert len(frames) > 150 and None not in want
            assert [f for f, a, b in zip(frames, got, want, strict=True) if a != b] == []
        finally:
            in_pacs.close()
            on_disk.close()
    finally:
        orthanc.stop()


def _sockets_to(port: int) -> int:
    """Sockets this process holds open to 127.0.0.1:``port`` (whatever their TCP state)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, closed by now
            ours.add(os.readlink(f"/proc/self/fd/{fd}"))
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and f"socket:[{fields[9]}]" in ours:
            count += 1
    return count


@pytest.mark.skipif(not available(), reason="Orthanc with its DICOMweb plugin is not installed")
def test_a_closed_pacs_slide_leaves_no_connection_to_the_pacs_open(tmp_path: Path) -> None:
    """wsidicom's close keeps its client's connections; the reader closes them itself, and a
    slide the PACS cannot give closes them at once."""
    orthanc = new_orthanc(tmp_path / "orthanc")
    try:
        series = write_series(tmp_path / "slide")
        orthanc.upload(series.folder)
        reader = open_dicomweb(DicomWebRef(orthanc.dicomweb, series.study, series.series), SizedLRU(64 << 20))
        reader.read_region(0, 0, 0, 64, 64)
        assert _sockets_to(orthanc.port) >= 1
        reader.close()
        assert _sockets_to(orthanc.port) == 0
        with pytest.raises(SlideError):
            open_dicomweb(DicomWebRef(orthanc.dicomweb, series.study, "1.2.3.4"), SizedLRU(64 << 20))
        assert _sockets_to(orthanc.port) == 0
    finally:
        orthanc.stop()
