"""POST /api/cases/{case_id}/annotations.geojson: QuPath GeoJSON into a live case.

Everyone in the room sees the imported shapes at once; the importer is their author; our own
export comes back as the same shapes; a file written by QuPath's rules (nested classification
with a colour, measurements, objectType) imports; what cannot be imported is refused saying why.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Map

from tests.conftest import Server, add_slides, collab, connect_db, room_people, write_pyramid_tiff
from tests.yclient import YClient

SHAPES = {
    "a-point": ("point", [[10.0, 20.0]]),
    "b-line": ("line", [[0.0, 0.0], [30.0, 40.0]]),
    "c-rect": ("rect", [[100.0, 100.0], [300.0, 200.0]]),
    "d-ellipse": ("ellipse", [[0.0, 0.0], [200.0, 100.0]]),
    "e-poly": ("polygon", [[0.0, 0.0], [50.0, 0.0], [50.0, 50.0]]),
    "f-freehand": ("freehand", [[5.0, 5.0], [9.5, 7.0], [12.0, 15.5], [4.0, 11.0]]),
    "g-text": ("text", [[400.0, 300.0]]),
}

# As QuPath 0.5 writes an annotation and a detection ("Export objects as GeoJSON").
QUPATH = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": "b1f0b5f4-1d2e-4c7a-9a57-3e9f6d0b7c11",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[1000, 1000], [1400, 1000], [1400, 1300], [1000, 1000]]],
            },
            "properties": {
                "objectType": "annotation",
                "classification": {"name": "Tumor", "color": [200, 0, 0]},
                "isLocked": False,
                "measurements": {"Area µm^2": 30000.0, "Perimeter µm": 1100.5, "Num Detections": 12},
            },
        },
        {
            "type": "Feature",
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[0, 0], [10, 0], [10, 10], [0, 0]]],
                    [[[20, 20], [30, 20], [30, 30], [20, 20]]],
                ],
            },
            "properties": {
                "objectType": "annotation",
                "name": "Margin",
                "classification": {"name": "Stroma", "colorRGB": -16744448},
                "measurements": [{"name": "Length µm", "value": 250.0}],
            },
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [5, 5]},
            "properties": {"objectType": "detection", "classification": {"name": "Tumor"}},
        },
    ],
}


def _ws(server: Server, case_id: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"


def _post(server: Server, case_id: str, slide: str, token: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/cases/{case_id}/annotations.geojson",
        params={"slide": slide},
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"},
        content=json.dumps(body),
    )


def _people(server: Server, tmp_path: Path) -> tuple[str, str, dict[str, str], dict[str, int]]:
    case_id, tokens, ids = room_people(server.data_dir)
    (slide,) = add_slides(server.data_dir, write_pyramid_tiff(tmp_path / "a1.tiff", 512, 512))
    return case_id, slide, tokens, ids


def test_export_then_import_gives_the_same_shapes_live(server: Server, tmp_path: Path) -> None:
    case_id, slide, tokens, ids = _people(server, tmp_path)

    async def scenario() -> None:
        drawer = await YClient(_ws(server, case_id), tokens["north.path"]).connect()
        await drawer.synced.wait()
        with drawer.doc.transaction():
            for n, (key, (kind, points)) in enumerate(SHAPES.items()):
                drawer.annotations()[key] = Map(
                    {
                        "slide": slide,
                        "kind": kind,
                        "points": points,
                        "label": f"shape {n} — μ",
                        "color": "#ff8000",
                        "author": str(ids["north.path"]),
                        "created": "2026-12-03T10:00:00Z",
                        "updated": "2026-12-03T10:00:00Z",
                    }  # fmt: skip
                )
        watcher = await YClient(_ws(server, case_id), tokens["north.onc"]).connect()
        await watcher.wait_for(lambda: len(watcher.annotations()) == len(SHAPES))
        exported = httpx.get(
            f"{server.url}/api/cases/{case_id}/annotations.geojson",
            params={"slide": slide},
            headers={"Authorization": f"Bearer {tokens['north.path']}"},
        )
        assert exported.status_code == 200
        answer = await asyncio.to_thread(
            _post, server, case_id, slide, tokens["north.trainee"], exported.json()
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["imported"] == len(SHAPES)
        # The watcher, in the room all along, sees them arrive.
        await watcher.wait_for(lambda: len(watcher.annotations()) == 2 * len(SHAPES))
        annotations = json.loads(str(watcher.annotations()))
        new = [annotations[i] for i in answer.json()["ids"]]
        for original in SHAPES.values():
            kind, points = original
            twin = [a for a in new if a["kind"] == kind and _close(a["points"], points)]
            assert len(twin) == 1, (kind, points, new)
            assert twin[0]["color"] == "#ff8000" and twin[0]["label"].startswith("shape ")
            assert twin[0]["author"] == str(ids["north.trainee"]) and twin[0]["slide"] == slide
        for client in (drawer, watcher):
            await client.close()

    asyncio.run(scenario())
    with connect_db(server.data_dir) as db:
        (detail,) = db.execute("SELECT detail FROM audit WHERE event = 'annotations imported'").fetchone()
    assert detail == f"GeoJSON, {len(SHAPES)} shapes"


def _close(a: list[list[float]], b: list[list[float]]) -> bool:
    pairs = zip(a, b, strict=False)
    return len(a) == len(b) and all(abs(p[0] - q[0]) < 0.11 and abs(p[1] - q[1]) < 0.11 for p, q in pairs)


def test_a_qupath_file_imports_with_classification_measurements_and_object_type(
    server: Server, tmp_path: Path
) -> None:
    case_id, slide, tokens, _ = _people(server, tmp_path)
    answer = _post(server, case_id, slide, tokens["north.path"], QUPATH)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["imported"] == 3  # one polygon, a MultiPolygon of two parts; the detection left out
    assert body["left_out"] == ["1 detection left out: only annotations are imported"]

    async def read() -> dict[str, Any]:
        client = await YClient(_ws(server, case_id), tokens["north.path"]).connect()
        await client.wait_for(lambda: len(client.annotations()) == 3)
        value = json.loads(str(client.annotations()))
        await client.close()
        return dict(value)

    shapes = asyncio.run(read())
    tumour = shapes[body["ids"][0]]
    assert tumour["kind"] == "polygon" and tumour["label"] == "Tumor" and tumour["color"] == "#c80000"
    assert tumour["points"] == [[1000, 1000], [1400, 1000], [1400, 1300]]
    assert tumour["measurements"] == {"Area µm^2": 30000.0, "Perimeter µm": 1100.5, "Num Detections": 12.0}
    margin = [shapes[i] for i in body["ids"][1:]]
    assert [m["label"] for m in margin] == ["Margin", "Margin"]
    assert {m["color"] for m in margin} == {"#008000"}  # QuPath's packed colour, -16744448
    assert margin[0]["measurements"] == {"Length µm": 250.0}


def test_what_cannot_be_imported_is_refused_saying_why(server: Server, tmp_path: Path) -> None:
    case_id, slide, tokens, _ = _people(server, tmp_path)
    holed = {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[0, 0], [100, 0], [100, 100], [0, 0]], [[10, 10], [20, 10], [20, 20], [10, 10]]],
        },
        "properties": {"objectType": "annotation"},
    }
    cases = [
        (holed, 422, "hole"),
        ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, "x"]}}, 422, "finite"),
        ({"type": "Topology"}, 422, "FeatureCollection"),
        (
            [{"type": "Feature", "geometry": {"type": "GeometryCollection", "geometries": []}}],
            422,
            "not imported",
        ),
    ]
    for body, status, words in cases:
        answer = _post(server, case_id, slide, tokens["north.path"], body)
        assert answer.status_code == status and words in answer.json()["detail"], (body, answer.text)
    # Read-only people, other slides and non-JSON are refused; nothing was stored.
    assert _post(server, case_id, slide, tokens["north.onc"], QUPATH).status_code == 403
    assert _post(server, case_id, "nope", tokens["north.path"], QUPATH).status_code == 422
    bad = httpx.post(
        f"{server.url}/api/cases/{case_id}/annotations.geojson?slide={slide}",
        headers={"Authorization": f"Bearer {tokens['north.path']}", "Content-Type": "application/geo+json"},
        content=b"{not json",
    )
    assert bad.status_code == 400
    made = collab("users", "token", "north.path", "--scope", "read", data_dir=server.data_dir)
    assert _post(server, case_id, slide, made.stdout.strip(), QUPATH).status_code == 403
    with connect_db(server.data_dir) as db:
        assert db.execute("SELECT count(*) FROM doc_updates WHERE case_id = ?", (case_id,)).fetchone()[0] == 0


def _export_dcm(server: Server, case_id: str, slide: str, token: str) -> bytes:
    answer = httpx.get(
        f"{server.url}/api/cases/{case_id}/annotations.dcm",
        params={"slide": slide},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom"
    return answer.content


def _draw(server: Server, case_id: str, slide: str, token: str, author: int) -> None:
    async def draw() -> None:
        client = await YClient(_ws(server, case_id), token).connect()
        await client.synced.wait()
        with client.doc.transaction():
            for n, (key, (kind, points)) in enumerate(SHAPES.items()):
                client.annotations()[key] = Map(
                    {
                        "slide": slide,
                        "kind": kind,
                        "points": points,
                        "label": f"shape {n}",
                        "color": "#ff8000",
                        "author": str(author),
                        "created": "2026-12-03T10:00:00Z",
                        "updated": "2026-12-03T10:00:00Z",
                    }  # fmt: skip
                )
        reader = await YClient(_ws(server, case_id), token).connect()
        await reader.wait_for(lambda: len(reader.annotations()) >= len(SHAPES))
        await client.close()
        await reader.close()

    asyncio.run(draw())


def test_dicom_bulk_annotations_round_trip_through_highdicom(server: Server, tmp_path: Path) -> None:
    import highdicom as hd
    import pydicom
    from highdicom.ann import AnnotationCoordinateTypeValues, MicroscopyBulkSimpleAnnotations

    case_id, slide, tokens, ids = _people(server, tmp_path)
    _draw(server, case_id, slide, tokens["north.path"], ids["north.path"])
    data = _export_dcm(server, case_id, slide, tokens["north.onc"])  # reading is enough to export

    # Read back with highdicom: one group per kind and label, the shapes in level-0 pixels.
    dataset = pydicom.dcmread(io.BytesIO(data))
    assert dataset.SOPClassUID in hd.ann.SOP_CLASS_UIDS
    ann = MicroscopyBulkSimpleAnnotations.from_dataset(dataset)
    scoord = AnnotationCoordinateTypeValues.SCOORD
    read = {
        (str(g.label), g.graphic_type.value): [p.tolist() for p in g.get_graphic_data(scoord)]
        for g in ann.get_annotation_groups()
    }
    assert read[("shape 2", "RECTANGLE")] == [
        [[100.0, 100.0], [300.0, 100.0], [300.0, 200.0], [100.0, 200.0]]
    ]
    assert read[("shape 0", "POINT")] == [[[10.0, 20.0]]]
    assert read[("shape 1", "POLYLINE")] == [[[0.0, 0.0], [30.0, 40.0]]]
    assert len(read) == len(SHAPES)
    assert str(dataset.PatientName) == "" and str(dataset.PatientID) == ""  # no patient in the file

    # And back in, live, as the same shapes.
    answer = httpx.post(
        f"{server.url}/api/cases/{case_id}/annotations.dcm",
        params={"slide": slide},
        headers={"Authorization": f"Bearer {tokens['north.trainee']}", "Content-Type": "application/dicom"},
        content=data,
    )
    assert answer.status_code == 201, answer.text

    async def read_back() -> dict[str, Any]:
        client = await YClient(_ws(server, case_id), tokens["north.path"]).connect()
        await client.wait_for(lambda: len(client.annotations()) == 2 * len(SHAPES))
        value = json.loads(str(client.annotations()))
        await client.close()
        return dict(value)

    annotations = asyncio.run(read_back())
    new = [annotations[i] for i in answer.json()["ids"]]
    for kind, points in SHAPES.values():
        # The format knows no freehand or text: they come back as a polygon and a point.
        expected = {"freehand": "polygon", "text": "point"}.get(kind, kind)
        assert any(a["kind"] == expected and _close(a["points"], points) for a in new), (kind, new)
    refused = httpx.post(
        f"{server.url}/api/cases/{case_id}/annotations.dcm",
        params={"slide": slide},
        headers={"Authorization": f"Bearer {tokens['north.path']}", "Content-Type": "application/dicom"},
        content=b"DICM not really",
    )
    assert (
        refused.status_code == 422
        and "no DICOM Microscopy Bulk Simple Annotations" in refused.json()["detail"]
    )


SHARED_DICOM = Path(__file__).resolve().parents[2] / "shared" / "slides" / "dicom-cmu-1-small-region"


@pytest.mark.skipif(not SHARED_DICOM.is_dir(), reason="../shared/slides is not here")
def test_a_dicom_slides_annotations_reference_its_uids(server: Server, tmp_path: Path) -> None:
    import pydicom
    from wsidicom import WsiDicom

    case_id, tokens, ids = room_people(server.data_dir)
    (slide,) = add_slides(server.data_dir, SHARED_DICOM)
    _draw(server, case_id, slide, tokens["north.path"], ids["north.path"])
    dataset = pydicom.dcmread(io.BytesIO(_export_dcm(server, case_id, slide, tokens["north.path"])))
    base = WsiDicom.open(SHARED_DICOM).levels.base_level.datasets[0].uids
    assert dataset.StudyInstanceUID == base.slide.study_instance
    assert dataset.ReferencedImageSequence[0].ReferencedSOPInstanceUID == base.instance
