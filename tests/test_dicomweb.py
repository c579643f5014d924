"""Slides kept in a PACS: a real Orthanc with its DICOMweb plugin holds the shared DICOM slides;
they are registered by reference (`collab slides add-dicomweb`), read frame by frame, and their
tiles match the same files read from disk. A PACS that stops answering gives 503s that name it,
and the other slides keep serving."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.conftest import Server, add_slides, collab, seed_case, signed_in, start_server, stop_server
from tests.orthanc import Orthanc, available, new_orthanc
from tests.test_annotations_export import _case_id, _user_id

SHARED = Path(__file__).resolve().parents[2] / "shared" / "slides"
SLIDES = [SHARED / "dicom-cmu-1-small-region", SHARED / "dicom-boxes"]

pytestmark = [
    pytest.mark.skipif(not all(p.is_dir() for p in SLIDES), reason="../shared/slides is not here"),
    pytest.mark.skipif(not available(), reason="Orthanc with its DICOMweb plugin is not installed"),
]


def _uids(folder: Path) -> tuple[str, str]:
    first = next(p for p in sorted(folder.iterdir()) if p.is_file())
    data = pydicom.dcmread(first, stop_before_pixels=True)
    return str(data.StudyInstanceUID), str(data.SeriesInstanceUID)


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[tuple[Orthanc, Server, list[tuple[str, str]]]]:
    """Orthanc holding both slides; a server whose case S26-1 has each twice: from disk and from
    the PACS. Yields (disk id, PACS id) pairs."""
    orthanc = new_orthanc(tmp_path / "orthanc")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = None
    try:
        seed_case(data_dir)
        pairs = []
        for folder in SLIDES:
            orthanc.upload(folder)
            (on_disk,) = add_slides(data_dir, folder)
            study, series = _uids(folder)
            made = collab(
                "slides", "add-dicomweb", orthanc.dicomweb, "--study", study, "--series", series,
                "--case", "S26-1", data_dir=data_dir,
            )  # fmt: skip
            assert made.returncode == 0, made.stderr
            pairs.append((on_disk, made.stdout.split("\t")[0]))
        server = signed_in(start_server(data_dir), "north.path")
        yield orthanc, server, pairs
    finally:
        if server is not None:
            stop_server(server)
        orthanc.stop()


def _levels(server: Server, slide: str) -> list[tuple[int, int, int]]:
    """(level, columns, rows) of the slide's Deep Zoom pyramid."""
    dzi = server.client.get(f"/slides/{slide}.dzi")
    assert dzi.status_code == 200, dzi.text
    info = server.client.get(f"/api/slides/{slide}").json()
    size = int(dzi.text.split('TileSize="')[1].split('"')[0])
    width, height = info["width"], info["height"]
    levels = []
    level = (max(width, height) - 1).bit_length()  # the top level: ceil(log2(long side))
    w, h = width, height
    while True:
        levels.append((level, -(-w // size), -(-h // size)))
        if level == 0:
            break
        w, h, level = -(-w // 2), -(-h // 2), level - 1
    return levels


def test_pacs_tiles_match_the_files_at_every_level(
    pacs: tuple[Orthanc, Server, list[tuple[str, str]]],
) -> None:
    _, server, pairs = pacs
    for on_disk, in_pacs in pairs:
        assert (
            server.client.get(f"/api/slides/{in_pacs}").json()["width"]
            == server.client.get(f"/api/slides/{on_disk}").json()["width"]
        )
        worst = 0.0
        tiles = 0
        for level, columns, rows in _levels(server, on_disk):
            for col in range(columns):
                for row in range(rows):
                    a = server.client.get(f"/slides/{on_disk}_files/{level}/{col}_{row}.png")
                    b = server.client.get(f"/slides/{in_pacs}_files/{level}/{col}_{row}.png")
                    assert a.status_code == b.status_code == 200, (
                        level,
                        col,
                        row,
                        a.status_code,
                        b.status_code,
                    )
                    pa = np.asarray(Image.open(io.BytesIO(a.content)).convert("RGB"), dtype=float)
                    pb = np.asarray(Image.open(io.BytesIO(b.content)).convert("RGB"), dtype=float)
                    assert pa.shape == pb.shape, (level, col, row)
                    worst = max(worst, float(np.abs(pa - pb).mean()))
                    tiles += 1
                    # As the viewer asks for them: JPEG, whole stored frames passed through as they are.
                    c = server.client.get(f"/slides/{on_disk}_files/{level}/{col}_{row}.jpeg")
                    d = server.client.get(f"/slides/{in_pacs}_files/{level}/{col}_{row}.jpeg")
                    assert (c.status_code, d.status_code) == (200, 200), (level, col, row, d.text[:200])
                    assert c.content == d.content, (level, col, row)
        print(f"{in_pacs}: {tiles} PNG tiles, worst mean absolute difference {worst:.3f}")
        assert worst <= 1.0


def test_a_pacs_that_stops_answering_gives_503s_naming_it(
    pacs: tuple[Orthanc, Server, list[tuple[str, str]]],
) -> None:
    orthanc, server, pairs = pacs
    (on_disk, in_pacs), (_, other_in_pacs) = pairs
    orthanc.stop()
    # Never opened: opening it needs the PACS.
    refused = server.client.get(f"/slides/{other_in_pacs}.dzi")
    assert refused.status_code == 503
    assert f"127.0.0.1:{orthanc.port}" in refused.text and "PACS" in refused.text
    # A tile of a slide opened before the PACS went: any frame not cached yet also fails clearly.
    assert server.client.get(f"/slides/{on_disk}_files/8/0_0.jpeg").status_code == 200
    assert server.client.get(f"/api/slides/{on_disk}").status_code == 200


def test_annotations_stored_in_the_pacs_with_stow_read_back(
    pacs: tuple[Orthanc, Server, list[tuple[str, str]]],
) -> None:
    import asyncio

    import highdicom as hd
    from dicomweb_client.api import DICOMwebClient
    from highdicom.ann import AnnotationCoordinateTypeValues, MicroscopyBulkSimpleAnnotations
    from pycrdt import Map

    from tests.conftest import api_token
    from tests.yclient import YClient

    orthanc, server, pairs = pacs
    on_disk, in_pacs = pairs[0]
    case_id = _case_id(server)
    token = api_token(server.data_dir, "north.path")

    async def draw() -> None:
        url = server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"
        client = await YClient(url, token).connect()
        await client.synced.wait()
        client.annotations()["margin"] = Map(
            {
                "slide": in_pacs,
                "kind": "rect",
                "points": [[100.0, 120.0], [400.0, 300.0]],
                "label": "Tumour",
                "color": "#ff0000",
                "author": str(_user_id(server, "north.path")),
                "created": "2026-12-04T10:00:00Z",
                "updated": "2026-12-04T10:00:00Z",
            }  # fmt: skip
        )
        reader = await YClient(url, token).connect()
        await reader.wait_for(lambda: "margin" in reader.annotations())
        await client.close()
        await reader.close()

    asyncio.run(draw())
    stored = server.client.post(f"/api/cases/{case_id}/annotations.dcm/pacs", params={"slide": in_pacs})
    assert stored.status_code == 201, stored.text
    uid = stored.json()["sop_instance_uid"]
    # A file slide has no PACS to store into.
    assert (
        server.client.post(
            f"/api/cases/{case_id}/annotations.dcm/pacs", params={"slide": on_disk}
        ).status_code
        == 409
    )

    # Read back from Orthanc over DICOMweb, with highdicom.
    study, _ = _uids(SLIDES[0])
    web = DICOMwebClient(orthanc.dicomweb)
    found = [
        i for i in web.search_for_instances(study_instance_uid=study) if i["00080018"]["Value"][0] == uid
    ]
    assert len(found) == 1
    series = found[0]["0020000E"]["Value"][0]
    dataset = web.retrieve_instance(study, series, uid)
    assert dataset.SOPClassUID in hd.ann.SOP_CLASS_UIDS
    ann = MicroscopyBulkSimpleAnnotations.from_dataset(dataset)
    (group,) = ann.get_annotation_groups()
    assert group.label == "Tumour" and group.graphic_type.value == "RECTANGLE"
    (corners,) = group.get_graphic_data(AnnotationCoordinateTypeValues.SCOORD)
    assert corners.tolist() == [[100.0, 120.0], [400.0, 120.0], [400.0, 300.0], [100.0, 300.0]]
    # It references the slide it was drawn on, in the PACS.
    assert dataset.StudyInstanceUID == study
    assert str(dataset.ReferencedImageSequence[0].ReferencedSOPInstanceUID) in _instance_uids(SLIDES[0])


def _instance_uids(folder: Path) -> set[str]:
    return {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in folder.iterdir()
        if p.is_file()
    }
