"""Running a meeting through the API: the coordinator records an outcome, the chair signs it
off, the meeting closes; the same rules and audit as the meeting page. Real server, real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import add_user, api_token, collab, connect_db, seed_case, start_server, stop_server


@pytest.fixture
def meeting(data_dir: Path) -> Iterator[dict[str, Any]]:
    seed_case(data_dir)
    add_user(data_dir, "north.coord", "admin", "North Trust", "--name", "Ms Coordinator")
    add_user(data_dir, "north.onc", "clinician", "North Trust", "--specialty", "oncology")
    made = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2030-06-04T13:00",
        "--chair", "north.path", "--coordinator", "north.coord", "--attendee", "north.onc",
        "--case", "S26-1", data_dir=data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with connect_db(data_dir) as db:
        case_id = db.execute("SELECT id FROM cases").fetchone()[0]
    server = start_server(data_dir)
    clients = {
        name: httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {api_token(data_dir, name)}"}, timeout=30
        )
        for name in ("north.path", "north.coord", "north.onc")
    }
    yield {"server": server, "clients": clients, "meeting": made.stdout.strip(), "case": case_id}
    for client in clients.values():
        client.close()
    stop_server(server)


def test_outcome_sign_off_and_close_through_the_api(meeting: dict[str, Any]) -> None:
    chair, coord, onc = (meeting["clients"][n] for n in ("north.path", "north.coord", "north.onc"))
    base = f"/api/meetings/{meeting['meeting']}"
    outcome = f"{base}/cases/{meeting['case']}/outcome"

    assert onc.post(outcome, json={"decisions": ["surgery"]}).status_code == 403  # an attendee
    for body, status in (
        ({"decisions": []}, 422),
        ({"decisions": ["magic"]}, 422),
        ({"decisions": "surgery"}, 422),
        ({"decisions": ["surgery"], "notes": 5}, 422),
        ({"decisions": ["surgery"], "by": 1}, 422),
    ):
        refused = coord.post(outcome, json=body)
        assert refused.status_code == status, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert coord.post(f"{base}/cases/nope/outcome", json={"decisions": ["surgery"]}).status_code == 404

    recorded = coord.post(outcome, json={"decisions": ["surgery", "radiotherapy"], "notes": "WLE, then RT."})
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["decisions"] == ["surgery", "radiotherapy"]
    room = coord.get(f"{base}/room").json()
    assert room["state"]["agenda"][0]["outcome"]["decisions"] == ["surgery", "radiotherapy"]

    assert coord.post(f"{base}/cases/{meeting['case']}/sign-off", json={}).status_code == 403  # chair only
    assert chair.post(f"{base}/cases/{meeting['case']}/sign-off", json={}).status_code == 200
    assert coord.post(outcome, json={"decisions": ["surgery"]}).status_code == 409  # final

    assert onc.post(f"{base}/close", json={}).status_code == 403
    assert coord.post(f"{base}/close", json={"now": True}).status_code == 422
    assert coord.post(f"{base}/close", json={}).status_code == 200
    assert coord.post(f"{base}/close", json={}).status_code == 409

    with connect_db(meeting["server"].data_dir) as db:
        events = [
            r[0]
            for r in db.execute(
                "SELECT event FROM audit WHERE event LIKE 'outcome%' OR event LIKE 'meeting%'"
            )
        ]
    assert {"meeting outcome recorded", "meeting outcome signed off", "meeting closed"} <= set(events)


def test_the_documented_bodies_are_accepted(meeting: dict[str, Any]) -> None:
    """docs/api.md's examples: a case from a laboratory system, onto the agenda, its outcome."""
    coord = meeting["clients"]["north.coord"]
    made = coord.post(
        "/api/cases",
        json={
            "accession": "S26-4812",
            "organisation": "North Trust",
            "priority": "2ww",
            "patient": {"name": "Ada Lovelace", "nhs_number": "9434765919", "date_of_birth": "1961-12-10"},
        },
    )
    assert made.status_code == 201, made.text
    case_id = made.json()["id"]
    base = f"/api/meetings/{meeting['meeting']}"
    item = {"case_id": case_id, "question": "Margins clear? Adjuvant RT?", "planned_minutes": 5}
    added = coord.post(f"{base}/agenda", json=item)
    assert added.status_code in (200, 201), added.text
    outcome = {"decisions": ["surgery", "radiotherapy"], "notes": "WLE, then RT."}
    assert coord.post(f"{base}/cases/{case_id}/outcome", json=outcome).status_code == 200
    docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    assert '"planned_minutes": 5' in docs and '"patient": {"name": "Ada Lovelace"' in docs


def test_the_agenda_case_search_offers_what_is_not_on_it_yet(meeting: dict[str, Any]) -> None:
    coord = meeting["clients"]["north.coord"]
    made = coord.post(
        "/api/cases",
        json={"accession": "S26-2", "patient": {"name": "Grace Hopper", "nhs_number": "9434765870"}},
    )
    assert made.status_code == 201, made.text
    search = f"/api/meetings/{meeting['meeting']}/cases"
    assert [c["title"] for c in coord.get(search, params={"q": "S26"}).json()] == ["S26-2"]  # S26-1 is on it
    by_number = coord.get(search, params={"q": "943 476 5870"}).json()
    assert [(c["title"], c["patient"]["name"]) for c in by_number] == [("S26-2", "Grace Hopper")]
    assert coord.get(search, params={"q": "no such case"}).json() == []
    assert coord.get(search, params={"q": "x" * 101}).status_code == 400
