"""GET /api/cases/{case_id}/annotations.geojson: what was drawn, as QuPath imports it."""

from __future__ import annotations

import asyncio

import httpx
from pycrdt import Map

from tests.conftest import Server, add_user, api_token, collab, connect_db
from tests.yclient import YClient


def _case_id(server: Server) -> str:
    with connect_db(server.data_dir) as db:
        return str(db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()[0])


def _user_id(server: Server, username: str) -> int:
    with connect_db(server.data_dir) as db:
        return int(db.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()[0])


def test_annotations_export_as_geojson_in_level0_pixels(server: Server) -> None:
    case_id = _case_id(server)
    token = api_token(server.data_dir, "north.path")
    author = str(_user_id(server, "north.path"))
    shapes = {
        "a-point": ("point", [[10, 20]]),
        "b-line": ("line", [[0, 0], [30, 40]]),
        "c-rect": ("rect", [[100, 100], [300, 200]]),
        "d-ellipse": ("ellipse", [[0, 0], [200, 100]]),
        "e-poly": ("polygon", [[0, 0], [50, 0], [50, 50]]),
    }

    async def draw() -> None:
        url = server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"
        client = await YClient(url, token).connect()
        await client.synced.wait()
        with client.doc.transaction():
            for n, (annotation_id, (kind, points)) in enumerate(shapes.items()):
                client.annotations()[annotation_id] = Map(
                    {
                        "slide": "s2" if kind == "point" else "s1",
                        "kind": kind,
                        "points": points,
                        "label": f"Tumour {n} — μ",
                        "color": "#ff8000",
                        "author": author,
                        "created": f"2026-11-29T10:0{n}:00Z",
                        "updated": f"2026-11-29T10:0{n}:00Z",
                    }
                )
        # The second client sees it all once the server has it.
        reader = await YClient(url, token).connect()
        await reader.wait_for(lambda: len(reader.annotations()) == len(shapes))
        await client.close()
        await reader.close()

    asyncio.run(draw())
    headers = {"Authorization": f"Bearer {token}"}
    answer = server.get(f"/api/cases/{case_id}/annotations.geojson", headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/geo+json")
    collection = answer.json()
    assert collection["type"] == "FeatureCollection"
    features = {f["id"]: f for f in collection["features"]}
    assert [f["id"] for f in collection["features"]] == sorted(shapes)  # oldest first
    assert features["a-point"]["geometry"] == {"type": "Point", "coordinates": [10.0, 20.0]}
    assert features["b-line"]["geometry"] == {"type": "LineString", "coordinates": [[0.0, 0.0], [30.0, 40.0]]}
    assert features["c-rect"]["geometry"]["coordinates"] == [
        [[100.0, 100.0], [300.0, 100.0], [300.0, 200.0], [100.0, 200.0], [100.0, 100.0]]
    ]
    ring = features["d-ellipse"]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 65
    assert all(abs(((x - 100) / 100) ** 2 + ((y - 50) / 50) ** 2 - 1) < 1e-9 for x, y in ring)
    assert features["e-poly"]["properties"]["name"] == "Tumour 4 — μ"
    assert features["e-poly"]["properties"]["color"] == [255, 128, 0]
    assert features["e-poly"]["properties"]["objectType"] == "annotation"
    assert features["e-poly"]["properties"]["collab"]["author"] == author
    # One slide's only, for importing into that image.
    one = server.get(f"/api/cases/{case_id}/annotations.geojson?slide=s2", headers=headers).json()
    assert [f["id"] for f in one["features"]] == ["a-point"]
    # The same when the room is closed: read back from the database.
    again = server.get(f"/api/cases/{case_id}/annotations.geojson", headers=headers).json()
    assert again == collection


def test_annotations_export_is_refused_to_strangers(server: Server) -> None:
    case_id = _case_id(server)
    collab("orgs", "add", "South Trust", data_dir=server.data_dir)
    add_user(server.data_dir, "south.path", "pathologist", "South Trust")
    token = api_token(server.data_dir, "south.path")
    answer = server.get(
        f"/api/cases/{case_id}/annotations.geojson", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 404
    anonymous = httpx.get(f"{server.url}/api/cases/{case_id}/annotations.geojson", follow_redirects=False)
    assert anonymous.status_code == 401
