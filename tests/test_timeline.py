"""The catch-up timeline: the presenter's path, compacted and kept, with when annotations were made."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pycrdt import Map

from tests.conftest import Server, add_user, api_token, collab, connect_db
from tests.yclient import YClient


def _case_id(server: Server) -> str:
    with connect_db(server.data_dir) as db:
        return str(db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()[0])


def _timeline(server: Server, case_id: str) -> Any:
    response = server.client.get(f"/api/cases/{case_id}/timeline")
    assert response.status_code == 200, response.text
    return response.json()


def _wait_for_path(server: Server, case_id: str, until: Any, timeout_s: float = 10) -> list[dict[str, Any]]:
    """Polls the API until ``until(path)`` holds: samples reach the disk in batches."""
    deadline = time.monotonic() + timeout_s
    while True:
        path = list(_timeline(server, case_id)["path"])
        if until(path) or time.monotonic() > deadline:
            return path
        time.sleep(0.05)  # the poll interval, not a wait for something to happen


def view(i: int) -> dict[str, Any]:
    return {"slide": "s1", "x": 1000.0 + i * 10, "y": 2000.0, "width": 4000.0, "rotation": 0}


def test_the_presenters_path_is_kept_compact_and_ends_where_they_stopped(server: Server) -> None:
    case_id = _case_id(server)
    token = api_token(server.data_dir, "north.path")
    url = server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"
    user = {"id": 1, "name": "Dr North"}

    async def scenario() -> None:
        presenter = await YClient(url, token).connect()
        await presenter.synced.wait()
        # Looking around without presenting leaves no trace.
        await presenter.set_awareness({"user": user, "view": view(-1), "presenting": False})
        # A fast pan while presenting: 40 views in a burst, as a drag sends them.
        for i in range(40):
            await presenter.set_awareness({"user": user, "view": view(i), "presenting": True})
        annotation = Map(
            {
                "slide": "s1",
                "kind": "point",
                "points": [[1, 2]],
                "label": "mitosis",
                "author": "1",
                "authorName": "Dr North",
                "created": "2026-11-29T10:00:00.000Z",
            }
        )
        presenter.annotations()["a1"] = annotation
        # The held-back last view of the burst is saved once its window is over.
        path = await asyncio.to_thread(
            _wait_for_path, server, case_id, lambda path: path and path[-1]["x"] == view(39)["x"]
        )
        await presenter.close()
        assert path[0]["x"] == view(0)["x"], "the first view of the tour is kept"
        assert path[-1]["x"] == view(39)["x"], "the replay ends where the presenter stopped"
        assert len(path) < 10, f"a burst of 40 views is compacted, got {len(path)} samples"
        assert all(sample["name"] == "Dr North" and sample["slide"] == "s1" for sample in path)
        assert view(-1)["x"] not in {sample["x"] for sample in path}
        made = _timeline(server, case_id)["annotations"]
        assert [(a["id"], a["label"], a["created"]) for a in made] == [
            ("a1", "mitosis", "2026-11-29T10:00:00.000Z")
        ]

    asyncio.run(scenario())


def test_the_timeline_is_only_for_those_who_may_see_the_case(server: Server) -> None:
    case_id = _case_id(server)
    assert collab("orgs", "add", "South Trust", data_dir=server.data_dir).returncode == 0
    add_user(server.data_dir, "south.path", "pathologist", "South Trust")
    server.client.headers["Authorization"] = f"Bearer {api_token(server.data_dir, 'south.path')}"
    response = server.client.get(f"/api/cases/{case_id}/timeline")
    assert response.status_code == 404
    assert "path" not in response.text
