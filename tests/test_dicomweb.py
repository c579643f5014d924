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
