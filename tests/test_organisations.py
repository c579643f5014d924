"""Trusts and networks in the browser and the API: administrators only, audited, and a move to
another network changes who may find whom at once. Real server, real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    Person,
    Server,
    add_user,
    collab,
    connect_db,
    sign_in_with_form,
    start_server,
    stop_server,
)


@pytest.fixture
def site(data_dir: Path) -> Iterator[tuple[Server, dict[str, Person]]]:
    for org, network in (("North Trust", "North"), ("East Trust", None)):
        extra = ("--network", network) if network else ()
        assert collab("orgs", "add", org, *extra, data_dir=data_dir).returncode == 0
    add_user(data_dir, "north.admin", "admin", "North Trust", "--name", "Ms Admin")
    add_user(data_dir, "north.path", "pathologist", "North Trust", "--name", "Dr North")
    add_user(data_dir, "east.onc", "clinician", "East Trust", "--name", "Dr East Oncology")
    server = start_server(data_dir)
    people = {name: sign_in_with_form(server, name) for name in ("north.admin", "north.path")}
    yield server, people
    for person in people.values():
        person.client.close()
    stop_server(server)


def _api(person: Person, method: str, path: str, body: object = None) -> object:
    return person.client.request(method, path, json=body, headers={"X-CSRF-Token": person.csrf})


def _audit(server: Server) -> list[tuple[str, str]]:
    with connect_db(server.data_dir) as db:
        return db.execute(
            "SELECT event, detail FROM audit WHERE event LIKE 'organisation%' ORDER BY id"
        ).fetchall()


def test_an_administrator_adds_a_trust_and_moves_one_into_a_network(site) -> None:  # type: ignore[no-untyped-def]
    server, people = site
    admin, path = people["north.admin"], people["north.path"]
    # An oncologist of East, outside North's network: the picker does not find them.
    assert [p["username"] for p in path.get("/api/people?q=East").json()] == []

    page = admin.get("/admin/organisations")
    assert page.status_code == 200 and "East Trust" in page.text
    added = admin.post("/admin/organisations", name="South Trust", network="North")
    assert added.status_code == 303
    listed = {o["name"]: o for o in _api(admin, "GET", "/api/admin/organisations").json()}  # type: ignore[attr-defined]
    assert listed["South Trust"]["network"] == "North" and listed["North Trust"]["people"] == 2

    east = listed["East Trust"]["id"]
    moved = _api(admin, "PATCH", f"/api/admin/organisations/{east}", {"network": "North"})
    assert moved.status_code == 200, moved.text  # type: ignore[attr-defined]
    assert [p["username"] for p in path.get("/api/people?q=East").json()] == ["east.onc"]
    events = _audit(server)
    assert [e for e, _ in events] == ["organisation added", "organisation changed"]
    assert events[1][1] == "East Trust (network: None) -> East Trust (network: North)"


def test_others_are_refused_and_bad_input_stores_nothing(site) -> None:  # type: ignore[no-untyped-def]
    server, people = site
    admin, path = people["north.admin"], people["north.path"]
    assert path.get("/admin/organisations").status_code == 403
    assert path.post("/admin/organisations", name="Rogue Trust").status_code == 403
    assert _api(path, "POST", "/api/admin/organisations", {"name": "Rogue"}).status_code == 403  # type: ignore[attr-defined]
    for body, status in (
        ({}, 400),
        ({"name": "  "}, 400),
        ({"name": "North Trust"}, 409),
        ({"name": "x" * 201}, 400),
        ({"name": "Ok", "network": 5}, 400),
    ):
        refused = _api(admin, "POST", "/api/admin/organisations", body)
        assert refused.status_code == status, (body, refused.text)  # type: ignore[attr-defined]
        assert refused.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert _api(admin, "PATCH", "/api/admin/organisations/99999", {"network": "x"}).status_code == 404  # type: ignore[attr-defined]
    north = next(
        o for o in _api(admin, "GET", "/api/admin/organisations").json() if o["name"] == "North Trust"
    )  # type: ignore[attr-defined]
    assert (
        _api(admin, "PATCH", f"/api/admin/organisations/{north['id']}", {"name": "East Trust"}).status_code
        == 409
    )  # type: ignore[attr-defined]
    assert _api(admin, "PATCH", f"/api/admin/organisations/{north['id']}", {"id": 7}).status_code == 422  # type: ignore[attr-defined]
    with connect_db(server.data_dir) as db:
        assert db.execute("SELECT name, network FROM organisations ORDER BY id").fetchall() == [
            ("North Trust", "North"),
            ("East Trust", None),
        ]
    assert _audit(server) == []
