"""Who sees what: every role, against a case of their own trust, one shared with it and a
foreign one, on every surface that carries a case's data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Server,
    add_slides,
    add_user,
    api_token,
    collab,
    connect_db,
    start_server,
    stop_server,
    write_fake_svs,
)

ROLES = ("admin", "pathologist", "trainee", "clinician", "student")
SURFACES = ("page", "json", "dzi", "tile", "thumbnail", "label", "macro")
PATIENTS = {"OWN-1": "Margaret Ellis", "SHARED-1": "John Carter", "FOREIGN-1": "Aisha Begum"}
NHS = {"OWN-1": "9434765919", "SHARED-1": "9434765870", "FOREIGN-1": "9434765838"}


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, str], dict[str, str]]]:
    """North Trust with one user per role; South Trust owning a shared and a foreign case."""
    data_dir = tmp_path_factory.mktemp("data")
    slides_dir = tmp_path_factory.mktemp("slides")
    collab("orgs", "add", "North Trust", "--network", "North", data_dir=data_dir)
    collab("orgs", "add", "South Trust", "--network", "South", data_dir=data_dir)
    for role in ROLES:
        extra = ("--specialty", "oncology") if role == "clinician" else ()
        add_user(data_dir, f"n.{role}", role, "North Trust", *extra)
    add_user(data_dir, "s.pathologist", "pathologist", "South Trust")
    slide_ids = {}
    for number, (accession, org) in enumerate(
        [("OWN-1", "North Trust"), ("SHARED-1", "South Trust"), ("FOREIGN-1", "South Trust")]
    ):
        result = collab(
            "cases",
            "add",
            accession,
            "--org",
            org,
            "--priority",
            "urgent",
            "--patient-name",
            PATIENTS[accession],
            "--nhs-number",
            NHS[accession],
            "--date-of-birth",
            "1958-03-14",
            data_dir=data_dir,
        )
        assert result.returncode == 0, result.stderr
        [slide_ids[accession]] = add_slides(
            data_dir, write_fake_svs(slides_dir / f"{accession}.svs", seed=number), accession=accession
        )
    shared = collab("cases", "share", "SHARED-1", "--org", "North Trust", "--read-only", data_dir=data_dir)
    assert shared.returncode == 0, shared.stderr
    tokens = {role: api_token(data_dir, f"n.{role}") for role in ROLES}
    server = start_server(data_dir)
    yield server, tokens, slide_ids
    stop_server(server)


def _urls(case_id: str, slide_id: str) -> dict[str, str]:
    return {
        "page": f"/cases/{case_id}",
        "json": f"/api/cases/{case_id}",
        "dzi": f"/slides/{slide_id}.dzi",
        "tile": f"/slides/{slide_id}_files/10/0_0.jpeg",
        "thumbnail": f"/slides/{slide_id}/thumbnail.jpeg",
        "label": f"/slides/{slide_id}/associated/label.jpeg",
        "macro": f"/slides/{slide_id}/associated/macro.jpeg",
    }


def _expected(role: str, ownership: str, surface: str) -> int:
    if ownership == "foreign" or (ownership == "own" and role == "student"):
        return 404  # not even the case's existence is told
    if surface in ("label", "macro") and role == "student":
        return 403
    return 200


@pytest.fixture(scope="module")
def case_ids(world: tuple[Server, dict[str, str], dict[str, str]]) -> dict[str, str]:
    """Case ids, read from the database file as an outside tool would."""

    server, _, _ = world
    with connect_db(server.data_dir) as db:
        return dict(db.execute("SELECT accession, id FROM cases").fetchall())


@pytest.mark.parametrize("role", ROLES)
def test_authorisation_matrix(
    world: tuple[Server, dict[str, str], dict[str, str]], case_ids: dict[str, str], role: str
) -> None:
    server, tokens, slide_ids = world
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    got, want = {}, {}
    for accession, ownership in (("OWN-1", "own"), ("SHARED-1", "shared"), ("FOREIGN-1", "foreign")):
        for surface, url in _urls(case_ids[accession], slide_ids[accession]).items():
            response = server.client.get(url, headers=headers)
            got[(ownership, surface)] = response.status_code
            want[(ownership, surface)] = _expected(role, ownership, surface)
            if response.status_code != 200:
                # No byte of a case one may not see: not its accession, patient or pixels.
                assert accession.encode() not in response.content
                assert PATIENTS[accession].encode() not in response.content
                assert len(response.content) < 200
    audit = server.client.get("/api/audit", headers=headers)
    got[("-", "audit")] = audit.status_code
    want[("-", "audit")] = 200 if role == "admin" else 403
    assert got == want


@pytest.mark.parametrize(
    "path", ["/", "/api/worklist", "/cases/x", "/api/cases/x", "/api/audit", "/admin/audit"]
)
def test_nobody_signed_in_gets_nothing(
    world: tuple[Server, dict[str, str], dict[str, str]], path: str
) -> None:
    server, _, slide_ids = world
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.get(path)
        assert response.status_code in (303, 401)
        if response.status_code == 303:
            assert response.headers["location"].startswith("/login")
        tile = anonymous.get(f"/slides/{slide_ids['OWN-1']}_files/10/0_0.jpeg")
        assert tile.status_code == 401
        bad_token = anonymous.get("/api/worklist", headers={"Authorization": "Bearer not-a-token"})
        assert bad_token.status_code == 401


def test_students_never_receive_patient_identifiers(
    world: tuple[Server, dict[str, str], dict[str, str]], case_ids: dict[str, str]
) -> None:
    server, tokens, slide_ids = world
    headers = {"Authorization": f"Bearer {tokens['student']}"}
    worklist = server.client.get("/api/worklist", headers=headers).json()
    assert [c["id"] for c in worklist["cases"]] == [case_ids["SHARED-1"]]
    responses = [
        server.client.get(url, headers=headers)
        for url in [
            "/",
            "/api/worklist",
            f"/cases/{case_ids['SHARED-1']}",
            f"/api/cases/{case_ids['SHARED-1']}",
        ]
    ]
    case = responses[-1].json()
    assert "patient" not in case and "accession" not in case and "clinical_details" not in case
    assert case["title"].startswith("Case ")
    for response in responses:
        assert response.status_code == 200
        for secret in [*PATIENTS.values(), *NHS.values(), "SHARED-1", "1958-03-14", "label.jpeg"]:
            assert secret.encode() not in response.content, (response.url, secret)
    for name in ("label", "macro", "thumbnail"):
        assert (
            server.client.get(
                f"/slides/{slide_ids['SHARED-1']}/associated/{name}.jpeg", headers=headers
            ).status_code
            == 403
        )


def test_identified_roles_see_patient_details(
    world: tuple[Server, dict[str, str], dict[str, str]], case_ids: dict[str, str]
) -> None:
    server, tokens, _ = world
    case = server.client.get(
        f"/api/cases/{case_ids['OWN-1']}", headers={"Authorization": f"Bearer {tokens['clinician']}"}
    ).json()
    assert case["accession"] == "OWN-1"
    assert case["patient"] == {
        "name": "Margaret Ellis",
        "nhs_number": "9434765919",
        "date_of_birth": "1958-03-14",
    }
    assert case["access"] == "read"  # clinicians read; pathologists contribute
    pathologist = server.client.get(
        f"/api/cases/{case_ids['OWN-1']}", headers={"Authorization": f"Bearer {tokens['pathologist']}"}
    ).json()
    assert pathologist["access"] == "contribute"
    shared = server.client.get(
        f"/api/cases/{case_ids['SHARED-1']}", headers={"Authorization": f"Bearer {tokens['pathologist']}"}
    ).json()
    assert shared["access"] == "read"  # shared read-only with North


def test_worklist_order_counts_and_filters(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    collab("orgs", "add", "North Trust", data_dir=data_dir)
    add_user(data_dir, "n.path", "pathologist", "North Trust")
    add_user(data_dir, "n.other", "pathologist", "North Trust", "--name", "Dr Other")
    for accession, priority, extra in [
        ("R-1", "routine", ()),
        ("U-1", "urgent", ()),
        ("W-1", "2ww", ("--assign", "n.path")),
        ("U-2", "urgent", ("--assign", "n.other")),
        ("R-2", "routine", ("--assign", "n.path")),
    ]:
        assert (
            collab(
                "cases",
                "add",
                accession,
                "--org",
                "North Trust",
                "--priority",
                priority,
                *extra,
                data_dir=data_dir,
            ).returncode
            == 0
        )
    server = start_server(data_dir)
    try:
        headers = {"Authorization": f"Bearer {api_token(data_dir, 'n.path')}"}
        data = server.client.get("/api/worklist", headers=headers).json()
        # Urgent first, then 2ww, then routine; oldest first within each.
        assert [c["accession"] for c in data["cases"]] == ["U-1", "U-2", "W-1", "R-1", "R-2"]
        assert data["counts"] == {
            "total": 5,
            "by_priority": {"urgent": 2, "2ww": 1, "routine": 2},
            "by_status": {"new": 5, "in review": 0, "ready for MDT": 0, "reported": 0},
        }
        mine = server.client.get("/api/worklist", params={"assignee": "me"}, headers=headers).json()
        assert [c["accession"] for c in mine["cases"]] == ["W-1", "R-2"]
        urgent = server.client.get("/api/worklist", params={"priority": "urgent"}, headers=headers).json()
        assert [c["accession"] for c in urgent["cases"]] == ["U-1", "U-2"]
        nobody = server.client.get("/api/worklist", params={"assignee": "none"}, headers=headers).json()
        assert [c["accession"] for c in nobody["cases"]] == ["U-1", "R-1"]
        page = server.client.get("/", params={"priority": "urgent"}, headers=headers)
        assert page.status_code == 200
        assert page.text.index("U-1") < page.text.index("U-2") and "R-1" not in page.text
    finally:
        stop_server(server)


def test_anonymised_views_withhold_identifiers_for_everyone(
    world: tuple[Server, dict[str, str], dict[str, str]], case_ids: dict[str, str]
) -> None:
    server, tokens, slide_ids = world
    headers = {"Authorization": f"Bearer {tokens['pathologist']}"}
    anonymised = {"view": "anonymised"}
    responses = [
        server.client.get(path, params=anonymised, headers=headers)
        for path in ["/", "/api/worklist", f"/cases/{case_ids['OWN-1']}", f"/api/cases/{case_ids['OWN-1']}"]
    ]
    for response in responses:
        assert response.status_code == 200
        for secret in [PATIENTS["OWN-1"], NHS["OWN-1"], "OWN-1", "1958-03-14", "label.jpeg"]:
            assert secret.encode() not in response.content, (response.url, secret)
    label = server.client.get(
        f"/slides/{slide_ids['OWN-1']}/associated/label.jpeg", params=anonymised, headers=headers
    )
    assert label.status_code == 403
    # The same person, not asking for anonymity, sees the patient.
    assert PATIENTS["OWN-1"] in server.client.get(f"/api/cases/{case_ids['OWN-1']}", headers=headers).text
