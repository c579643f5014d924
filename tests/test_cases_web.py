"""Cases created and worked in the browser and the API (collab.web.cases, collab.web.cases_api),
and the worklist's search, sort and pages (collab.store.worklist): rights, bad input that stores
nothing, and searches that never reveal a patient to someone who may not see identifiers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from collab.store import Database
from collab.store.migrations import MIGRATIONS
from tests.conftest import (
    Server,
    add_user,
    api_token,
    collab,
    connect_db,
    seed_case,
    sign_in_with_form,
    start_server,
    stop_server,
)

PEOPLE = {
    "north.admin": ("admin", "North Trust"),
    "north.trainee": ("trainee", "North Trust"),
    "north.onc": ("clinician", "North Trust"),
    "north.student": ("student", "North Trust"),
    "east.path": ("pathologist", "East Trust"),
}
PATIENT = {"name": "Margaret Ellis", "nhs_number": "943 476 5919", "date_of_birth": "1958-03-14"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, dict[str, str]]]]:
    data_dir = tmp_path_factory.mktemp("cases") / "data"
    data_dir.mkdir()
    seed_case(data_dir)  # North Trust, north.path, S26-1
    assert collab("orgs", "add", "East Trust", "--network", "North", data_dir=data_dir).returncode == 0
    for username, (role, org) in PEOPLE.items():
        add_user(data_dir, username, role, org)
    server = start_server(data_dir)
    headers = {
        name: {"Authorization": f"Bearer {api_token(data_dir, name)}"} for name in ("north.path", *PEOPLE)
    }
    yield server, headers
    stop_server(server)


def _rows(server: Server, table: str) -> int:
    with connect_db(server.data_dir) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _events(server: Server, case_id: str) -> list[str]:
    with connect_db(server.data_dir) as db:
        return [r[0] for r in db.execute("SELECT event FROM audit WHERE case_id = ? ORDER BY id", (case_id,))]


def _create(server: Server, headers: dict[str, str], **body: Any) -> httpx.Response:
    return server.client.post("/api/cases", json=body, headers=headers)


def test_a_pathologist_creates_edits_moves_and_annotates_a_case_through_the_api(
    world: tuple[Server, dict[str, dict[str, str]]],
) -> None:
    server, headers = world
    made = _create(server, headers["north.path"], accession="API-1", priority="2ww", patient=PATIENT)
    assert made.status_code == 201, made.text
    case_id = made.json()["id"]
    assert made.json() == {
        "id": case_id,
        "accession": "API-1",
        "priority": "2ww",
        "status": "new",
        "url": f"/cases/{case_id}",
    }
    changed = server.client.patch(
        f"/api/cases/{case_id}",
        json={"priority": "urgent", "patient": {"name": "Margaret A. Ellis"}},
        headers=headers["north.path"],
    )
    assert changed.json() == {"id": case_id, "changed": ["priority", "patient"]}
    case = server.client.get(f"/api/cases/{case_id}", headers=headers["north.path"]).json()
    assert case["priority"] == "urgent"
    assert case["patient"] == {**PATIENT, "name": "Margaret A. Ellis"}  # the rest kept as it was
    assert (case["may_edit"], case["status_steps"], case["notes"]) == (True, ["in review"], [])
    for status in ("in review", "ready for MDT"):
        moved = server.client.post(
            f"/api/cases/{case_id}/status", json={"status": status}, headers=headers["north.path"]
        )
        assert moved.json() == {"id": case_id, "status": status}
    skipped = server.client.post(
        f"/api/cases/{case_id}/status", json={"status": "new"}, headers=headers["north.path"]
    )
    assert skipped.status_code == 409
    assert "can move to 'reported' or 'in review'" in skipped.json()["detail"]
    note = server.client.post(
        f"/api/cases/{case_id}/notes",
        json={"body": "Discuss margins at MDT."},
        headers=headers["north.trainee"],
    )
    assert note.status_code == 201
    notes = server.client.get(f"/api/cases/{case_id}/notes", headers=headers["north.path"]).json()["notes"]
    assert [(n["author"], n["body"]) for n in notes] == [("north.trainee", "Discuss margins at MDT.")]
    assert [e for e in _events(server, case_id) if e != "case opened"] == [
        "case created",
        "case changed",
        "case status changed",
        "case status changed",
        "case note added",
    ]


@pytest.mark.parametrize("who", ["north.trainee", "north.onc", "north.student", "east.path"])
def test_only_pathologists_and_admins_of_the_trust_create_and_change_cases(
    world: tuple[Server, dict[str, dict[str, str]]], who: str
) -> None:
    server, headers = world
    case_id = server.client.get("/api/worklist", params={"q": "S26-1"}, headers=headers["north.path"]).json()[
        "cases"
    ][0]["id"]
    before = (_rows(server, "cases"), _rows(server, "case_notes"), _events(server, case_id))
    refused = _create(server, headers[who], accession=f"NOT-{who}", organisation="North Trust")
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    patched = server.client.patch(f"/api/cases/{case_id}", json={"priority": "urgent"}, headers=headers[who])
    moved = server.client.post(
        f"/api/cases/{case_id}/status", json={"status": "in review"}, headers=headers[who]
    )
    # Someone who may not see the case is told it does not exist; the others that they may not.
    expected = 404 if who in ("east.path", "north.student") else 403
    assert (patched.status_code, moved.status_code) == (expected, expected)
    if who == "north.onc":  # reads the case, but contributes nothing to it
        note = server.client.post(f"/api/cases/{case_id}/notes", json={"body": "x"}, headers=headers[who])
        assert note.status_code == 403
    assert (_rows(server, "cases"), _rows(server, "case_notes")) == before[:2]
    assert [e for e in _events(server, case_id) if e != "case opened"] == [
        e for e in before[2] if e != "case opened"
    ]
    admin = _create(server, headers["north.admin"], accession="ADMIN-1")
    assert admin.status_code in (201, 409)  # once per module; the parametrised runs share the world


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"accession": ""}, 422, "accession number"),
        ({"accession": "BAD-1", "patient": {"nhs_number": "12345"}}, 422, "10 digits"),
        ({"accession": "BAD-2", "patient": {"date_of_birth": "14/03/1958"}}, 422, "YYYY-MM-DD"),
        ({"accession": "BAD-3", "patient": {"date_of_birth": "2999-01-01"}}, 422, "not a possible one"),
        ({"accession": "BAD-4", "priority": "soon"}, 422, "Priority must be"),
        ({"accession": "BAD-5", "colour": "red"}, 422, "Unknown field: colour"),
        ({"accession": "BAD-6", "organisation": "East Trust"}, 403, "North Trust only"),
        ({"accession": "S26-1"}, 409, "already exists"),
        ({"accession": "BAD-7", "patient": {"name": 12}}, 422, "string or null"),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_stores_nothing(
    world: tuple[Server, dict[str, dict[str, str]]], body: dict[str, Any], status: int, says: str
) -> None:
    server, headers = world
    before = (_rows(server, "cases"), _rows(server, "audit"))
    refused = _create(server, headers["north.path"], **body)
    assert refused.status_code == status, refused.text
    assert says in refused.json()["detail"]
    assert (_rows(server, "cases"), _rows(server, "audit")) == before


def test_the_pages_create_edit_move_and_note_a_case(world: tuple[Server, dict[str, dict[str, str]]]) -> None:
    server, _ = world
    person = sign_in_with_form(server, "north.path")
    form = person.get("/cases/new")
    assert form.status_code == 200 and 'name="accession"' in form.text and "North Trust" in form.text
    trust = form.text.split('name="trust"><option value="')[1].split('"')[0]
    before = _rows(server, "cases")
    bad = person.post("/cases/new", accession="WEB-1", trust=trust, priority="routine", nhs_number="12")
    assert bad.status_code == 422 and "10 digits" in bad.text and 'value="WEB-1"' in bad.text
    assert _rows(server, "cases") == before
    made = person.post(
        "/cases/new",
        accession="WEB-1",
        trust=trust,
        priority="routine",
        patient_name="Ada Price",
        nhs_number="4010232137",
    )
    assert made.status_code == 303
    case_url = made.headers["location"]
    edited = person.post(
        f"{case_url}/edit", priority="urgent", patient_name="Ada Price", nhs_number="4010232137"
    )
    assert edited.status_code == 303
    assert person.post(f"{case_url}/status", status="in review").status_code == 303
    assert person.post(f"{case_url}/status", status="reported").status_code == 409  # one step at a time
    assert person.post(f"{case_url}/notes", body="Needs a second opinion?").status_code == 303
    page = person.get(case_url).text
    assert "in review" in page and "Needs a second opinion?" in page and "urgent" in page
    assert 'value="ready for MDT"' in page  # the next step is offered
    forged = person.client.post(f"{case_url}/notes", data={"csrf": "wrong", "body": "forged"})
    assert forged.status_code == 403 and "forged" not in person.get(case_url).text
    clinician = sign_in_with_form(server, "north.onc")
    assert clinician.get("/cases/new").status_code == 403
    assert clinician.get(f"{case_url}/edit").status_code == 403
    assert "New case" not in clinician.get("/").text
    person.client.close()
    clinician.client.close()


SECRETS = ("Margaret", "943 476 5919", "9434765919", "SEC-1", "1958-03-14")


def test_a_search_never_reveals_a_patient_to_someone_who_may_not_see_identifiers(
    world: tuple[Server, dict[str, dict[str, str]]],
) -> None:
    server, headers = world
    made = _create(server, headers["north.path"], accession="SEC-1", patient=PATIENT)
    case_id = made.json()["id"]
    assert (
        collab(
            "cases", "share", "SEC-1", "--user", "north.student", "--read-only", data_dir=server.data_dir
        ).returncode
        == 0
    )
    for q in ("Margaret", "943 476", "9434765919", "SEC-1"):
        found = server.client.get("/api/worklist", params={"q": q}, headers=headers["north.path"]).json()
        assert case_id in [c["id"] for c in found["cases"]], q
        for who, params in [
            ("north.student", {}),  # sees the case, never its identifiers
            ("east.path", {}),  # another trust: does not see the case at all
            ("north.path", {"view": "anonymised"}),  # an anonymised screen
        ]:
            for path in ("/api/worklist", "/"):
                answer = server.client.get(path, params={"q": q, **params}, headers=headers[who])
                assert answer.status_code == 200
                shown = answer.text.replace(q, "")  # the search box shows what they typed
                assert not any(s in shown for s in SECRETS), (who, q, path)
                if path == "/api/worklist":
                    assert answer.json()["shown"] == 0, (who, q)
    by_id = server.client.get(
        "/api/worklist", params={"q": f"Case {case_id[:6]}"}, headers=headers["north.student"]
    )
    assert [c["id"] for c in by_id.json()["cases"]] == [case_id]


def test_pages_and_sorts_of_the_worklist(world: tuple[Server, dict[str, dict[str, str]]]) -> None:
    server, headers = world
    for n, priority in enumerate(["routine", "urgent", "2ww", "urgent", "routine", "routine", "2ww"]):
        assert (
            _create(server, headers["north.path"], accession=f"PG-{n}", priority=priority).status_code == 201
        )
    everyone = server.client.get(
        "/api/worklist", params={"q": "PG-", "per_page": 200}, headers=headers["north.path"]
    )
    assert [c["accession"] for c in everyone.json()["cases"]] == [
        "PG-1",
        "PG-3",
        "PG-2",
        "PG-6",
        "PG-0",
        "PG-4",
        "PG-5",
    ]
    seen = []
    for page in (1, 2, 3):
        got = server.client.get(
            "/api/worklist", params={"q": "PG-", "per_page": 3, "page": page}, headers=headers["north.path"]
        ).json()
        assert (got["shown"], got["pages"], got["page"]) == (7, 3, page)
        seen += [c["accession"] for c in got["cases"]]
    assert seen == [c["accession"] for c in everyone.json()["cases"]]
    by_accession = server.client.get(
        "/api/worklist", params={"q": "pg-", "sort": "accession"}, headers=headers["north.path"]
    ).json()
    assert [c["accession"] for c in by_accession["cases"]] == [f"PG-{n}" for n in range(7)]
    newest = server.client.get(
        "/api/worklist", params={"q": "PG-", "sort": "created"}, headers=headers["north.path"]
    )
    assert newest.json()["cases"][0]["accession"] == "PG-6"
    past = server.client.get(
        "/api/worklist", params={"q": "PG-", "per_page": 3, "page": 9}, headers=headers["north.path"]
    )
    assert (past.json()["cases"], past.json()["shown"]) == ([], 7)
    page = server.client.get(
        "/", params={"q": "PG-", "per_page": 3, "page": 2}, headers=headers["north.path"]
    )
    assert 'aria-current="page">2<' in page.text and "q=PG-" in page.text
    for bad in ({"sort": "name"}, {"page": "0"}, {"per_page": "500"}, {"page": "x"}, {"q": "x" * 101}):
        refused = server.client.get("/api/worklist", params=bad, headers=headers["north.path"])
        assert refused.status_code == 422 and refused.json()["detail"], bad


def test_the_worklist_grants_what_the_case_page_grants(
    world: tuple[Server, dict[str, dict[str, str]]],
) -> None:
    """The worklist's SQL is collab.domain.case_access rewritten: both must agree, case by case."""
    server, headers = world
    _create(server, headers["east.path"], accession="EAST-1")
    assert (
        collab(
            "cases", "share", "EAST-1", "--org", "North Trust", "--read-only", data_dir=server.data_dir
        ).returncode
        == 0
    )
    # A case nobody has opened yet: the server remembers access decisions for a few seconds.
    _create(server, headers["north.path"], accession="TO-EAST-1")
    shared = collab("cases", "share", "TO-EAST-1", "--user", "east.path", data_dir=server.data_dir)
    assert shared.returncode == 0
    for who in ("north.path", *PEOPLE):
        listed = server.client.get("/api/worklist", params={"per_page": 200}, headers=headers[who]).json()[
            "cases"
        ]
        assert listed or who == "north.student"
        for row in listed:
            case = server.client.get(f"/api/cases/{row['id']}", headers=headers[who]).json()
            assert (row["access"], row["title"], "patient" in row) == (
                case["access"],
                case["title"],
                "patient" in case,
            ), (who, row["title"])


def test_an_older_database_upgrades_with_its_cases_and_references_intact(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(";".join(MIGRATIONS[:-1]) + f";PRAGMA user_version={len(MIGRATIONS) - 1};")
        old.execute("INSERT INTO organisations (id, name) VALUES (1, 'North Trust')")
        old.execute(
            "INSERT INTO cases (id, accession, org_id, priority, status, created, patient_name)"
            " VALUES ('c1', 'OLD-1', 1, 'urgent', 'in review', '2026-01-01', 'Ann Moss')"
        )
        old.execute("INSERT INTO slides VALUES ('s1', 'c1', '/x.svs', NULL, 10, 10, NULL, '2026-01-01')")

    async def upgrade() -> None:
        async with Database(path) as db:
            case = await db.catalog.case("c1")
            assert case is not None and (case.accession, case.status, case.patient.name) == (
                "OLD-1",
                "in review",
                "Ann Moss",
            )
            assert await db.catalog.set_status("c1", "ready for MDT", was="in review")
            assert [s.id for s in await db.catalog.slides_of_case("c1")] == ["s1"]

    asyncio.run(upgrade())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE cases SET status = 'lost' WHERE id = 'c1'")
