"""Meetings arranged in the browser and through the API: the people directory, new meetings and
weekly series, the agenda, attendees of other trusts, cancel/reopen, several decisions per
outcome, patient identifiers only for those allowed, and "Next" after "Pause"."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
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

PEOPLE = {
    "north.coord": ("admin", "North Trust", "Ms Coordinator", ()),
    "north.path": ("pathologist", "North Trust", "Dr North", ()),
    "north.student": ("student", "North Trust", "Sam Student", ()),
    "south.surgeon": ("clinician", "South Trust", "Mr South Surgeon", ("--specialty", "surgery")),
    "east.path": ("pathologist", "East Trust", "Dr East", ()),
    "east.onc": ("clinician", "East Trust", "Dr East Oncology", ("--specialty", "oncology")),
}
PATIENT = ("Ada Lovelace", "943 476 5919", "1961-12-10")


@dataclass
class World:
    server: Server
    people: dict[str, Person]
    cases: dict[str, str]  # accession -> case id

    def db(self) -> Any:
        return connect_db(self.server.data_dir)

    def api(self, username: str, method: str, path: str, body: Any = None) -> httpx.Response:
        person = self.people[username]
        headers = {"X-CSRF-Token": person.csrf}
        return person.client.request(method, path, json=body, headers=headers)

    def meeting(self, **extra: Any) -> str:
        body = {"name": "Breast MDT", "starts_uk": "2030-06-04T13:00", "chair": "north.path"}
        made = self.api("north.coord", "POST", "/api/meetings", body | {"coordinator": "north.coord"} | extra)
        assert made.status_code == 201, made.text
        return str(made.json()[0]["id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """North and South Trusts in one network, East Trust outside it; cases of North, South, East."""
    data_dir = tmp_path_factory.mktemp("data")
    for org, network in (("North Trust", "Alliance"), ("South Trust", "Alliance"), ("East Trust", None)):
        extra = ("--network", network) if network else ()
        assert collab("orgs", "add", org, *extra, data_dir=data_dir).returncode == 0
    for username, (role, org, name, extra) in PEOPLE.items():
        add_user(data_dir, username, role, org, "--name", name, *extra)
    cases = {}
    for accession, org, patient in (
        ("N26-1", "North Trust", ("--patient-name", PATIENT[0], "--nhs-number", PATIENT[1],
                                  "--date-of-birth", PATIENT[2])),
        ("N26-2", "North Trust", ()),
        ("S26-1", "South Trust", ()),
        ("E26-1", "East Trust", ()),
    ):  # fmt: skip
        made = collab("cases", "add", accession, "--org", org, *patient, data_dir=data_dir)
        assert made.returncode == 0, made.stderr
        cases[accession] = made.stdout.strip()
    # South opens one case to North (as a network does), so North's coordinator may add it.
    assert collab("cases", "share", "S26-1", "--org", "North Trust", data_dir=data_dir).returncode == 0
    server = start_server(data_dir)
    people = {username: sign_in_with_form(server, username) for username in PEOPLE}
    yield World(server, people, cases)
    for person in people.values():
        person.client.close()
    stop_server(server)


def test_the_people_picker_finds_only_the_findable(world: World) -> None:
    found = world.api("north.coord", "GET", "/api/people?q=trust&limit=20")
    assert found.status_code == 200
    usernames = {p["username"] for p in found.json()}
    # Own trust and network, and pathologists anywhere (admins ask for opinions); not East's clinician.
    assert usernames == {"north.coord", "north.path", "north.student", "south.surgeon", "east.path"}
    surgeon = next(p for p in found.json() if p["username"] == "south.surgeon")
    assert surgeon == {
        "id": surgeon["id"],
        "username": "south.surgeon",
        "name": "Mr South Surgeon",
        "role": "clinician",
        "organisation": "South Trust",
        "specialty": "surgery",
    }
    assert world.api("north.coord", "GET", "/api/people?q=East Oncology").json() == []
    assert world.api("north.coord", "GET", "/api/people?q=e").json() == []  # two letters at least
    bad = world.api("north.coord", "GET", "/api/people?q=trust&limit=500")
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    # The student finds their own trust and network, not pathologists elsewhere.
    assert {p["username"] for p in world.api("north.student", "GET", "/api/people?q=trust").json()} == {
        "north.coord",
        "north.path",
        "north.student",
        "south.surgeon",
    }


def count(world: World, table: str) -> int:
    with world.db() as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_bad_meetings_are_refused_and_nothing_is_stored(world: World) -> None:
    before = count(world, "meetings")
    good = {
        "name": "Breast MDT",
        "starts_uk": "2030-06-04T13:00",
        "chair": "north.path",
        "coordinator": "north.coord",
    }
    for change, status in (
        ({"name": ""}, 422),
        ({"starts_uk": "next Tuesday"}, 422),
        ({"weeks": 0}, 422),
        ({"weeks": "3"}, 422),
        ({"chair": "east.onc"}, 422),  # not someone the coordinator may find
        ({"attendees": "south.surgeon"}, 422),
    ):
        refused = world.api("north.coord", "POST", "/api/meetings", good | change)
        assert refused.status_code == status, (change, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert world.api("north.student", "POST", "/api/meetings", good).status_code == 403
    person = world.people["north.coord"]
    assert person.client.post("/api/meetings", json=good).status_code == 403  # no CSRF header
    assert count(world, "meetings") == before


def test_a_weekly_series_keeps_uk_local_time_across_the_clock_change(world: World) -> None:
    body = {"name": "Lung MDT", "starts_uk": "2030-03-26T13:00", "chair": "north.path"}
    made = world.api(
        "north.coord", "POST", "/api/meetings", body | {"coordinator": "north.coord", "weeks": 2}
    )
    assert made.status_code == 201, made.text
    first, second = made.json()
    assert (first["starts_uk"], first["starts_utc"]) == ("2030-03-26 13:00", "2030-03-26T13:00")
    # British Summer Time starts on 31 March 2030: 13:00 in London is then 12:00 UTC.
    assert (second["starts_uk"], second["starts_utc"]) == ("2030-04-02 13:00", "2030-04-02T12:00")
    assert first["series_id"] and first["series_id"] == second["series_id"]
    listed = world.people["north.coord"].get("/meetings")
    assert listed.status_code == 200 and listed.text.count("Lung MDT") == 2


def test_the_form_arranges_a_meeting(world: World) -> None:
    coord = world.people["north.coord"]
    page = coord.get("/meetings/new")
    assert page.status_code == 200 and "UK local time" in page.text and "data-people-picker" in page.text
    made = coord.post(
        "/meetings/new",
        name="Skin MDT",
        starts_uk="2030-07-02T09:30",
        chair="north.path",
        coordinator="north.coord",
    )
    assert made.status_code == 303
    meeting = coord.get(made.headers["location"])
    assert "Skin MDT" in meeting.text and "2030-07-02 09:30 (UK local time)" in meeting.text
    refused = coord.post(
        "/meetings/new", name="Skin MDT", starts_uk="", chair="north.path", coordinator="north.coord"
    )
    assert refused.status_code == 400 and "is not a date and time" in refused.text


def test_the_agenda_and_attendees_open_cases_to_other_trusts(world: World) -> None:
    meeting_id = world.meeting()
    north, south = world.cases["N26-1"], world.cases["S26-1"]
    surgeon = world.people["south.surgeon"]
    assert surgeon.get(f"/cases/{north}").status_code in (403, 404)
    path_id = next(p["id"] for p in world.api("north.coord", "GET", "/api/people?q=north.path").json())
    items = [
        {"case_id": north, "question": "Breast conservation?", "planned_minutes": 5, "presenter": path_id},
        {"case_id": south, "question": "Margins?", "planned_minutes": 3},
    ]
    put = world.api("north.coord", "PUT", f"/api/meetings/{meeting_id}/agenda", {"items": items})
    assert put.status_code == 200, put.text
    assert [(i["case_id"], i["question"], i["presenter"]) for i in put.json()] == [
        (north, "Breast conservation?", path_id),
        (south, "Margins?", None),
    ]
    agenda_before = put.json()
    for bad, status in (
        ({"items": [*items, items[0]]}, 422),  # twice
        ({"items": [*items, {"case_id": world.cases["E26-1"]}]}, 422),  # not one the coordinator sees
        ({"items": [{**items[0], "planned_minutes": 0}]}, 422),
        ({"items": "all"}, 422),
    ):
        refused = world.api("north.coord", "PUT", f"/api/meetings/{meeting_id}/agenda", bad)
        assert refused.status_code == status, refused.text
    # Not taking part: the meeting does not exist for them.
    assert (
        world.api("south.surgeon", "PUT", f"/api/meetings/{meeting_id}/agenda", {"items": []}).status_code
        == 404
    )
    unfindable = {"username": "east.onc"}
    refused = world.api("north.coord", "POST", f"/api/meetings/{meeting_id}/attendees", unfindable)
    assert refused.status_code == 422
    added = world.api(
        "north.coord", "POST", f"/api/meetings/{meeting_id}/attendees", {"username": "south.surgeon"}
    )
    assert added.status_code == 200 and "south.surgeon" in {p["username"] for p in added.json()}
    assert surgeon.get(f"/meetings/{meeting_id}/room").status_code == 200
    assert surgeon.get(f"/cases/{north}").status_code == 200  # opened by the meeting
    # An attendee takes part but does not arrange.
    assert (
        world.api("south.surgeon", "PUT", f"/api/meetings/{meeting_id}/agenda", {"items": []}).status_code
        == 403
    )
    reordered = world.api("north.coord", "PUT", f"/api/meetings/{meeting_id}/agenda", {"items": items[::-1]})
    assert [i["case_id"] for i in reordered.json()] == [south, north]
    assert [i["case_id"] for i in agenda_before] == [north, south]
    removed = world.api("north.coord", "DELETE", f"/api/meetings/{meeting_id}/agenda/{north}")
    assert [i["case_id"] for i in removed.json()] == [south]
    assert surgeon.get(f"/cases/{north}").status_code in (403, 404)
    gone = world.api(
        "north.coord", "DELETE", f"/api/meetings/{meeting_id}/attendees", {"username": "south.surgeon"}
    )
    assert gone.status_code == 200
    assert surgeon.get(f"/meetings/{meeting_id}/room").status_code == 404


def test_cancel_and_reopen(world: World) -> None:
    meeting_id = world.meeting(attendees=["south.surgeon"])
    north = world.cases["N26-2"]
    assert (
        world.api("north.coord", "POST", f"/api/meetings/{meeting_id}/agenda", {"case_id": north}).status_code
        == 200
    )
    surgeon = world.people["south.surgeon"]
    assert surgeon.get(f"/cases/{north}").status_code == 200
    cancelled = world.api("north.coord", "PATCH", f"/api/meetings/{meeting_id}", {"status": "cancelled"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert surgeon.get(f"/cases/{north}").status_code in (403, 404)
    assert "This meeting is cancelled." in world.people["north.coord"].get(f"/meetings/{meeting_id}").text
    again = world.api("north.coord", "PATCH", f"/api/meetings/{meeting_id}", {"status": "cancelled"})
    assert again.status_code == 409
    blocked = world.api(
        "north.coord", "POST", f"/api/meetings/{meeting_id}/agenda", {"case_id": world.cases["N26-1"]}
    )
    assert blocked.status_code == 409
    reopened = world.api("north.coord", "PATCH", f"/api/meetings/{meeting_id}", {"status": "scheduled"})
    assert reopened.json()["status"] == "scheduled"
    assert surgeon.get(f"/cases/{north}").status_code == 200
    renamed = world.api("north.coord", "PATCH", f"/api/meetings/{meeting_id}", {"name": "Breast MDT (moved)"})
    assert renamed.json()["name"] == "Breast MDT (moved)"
    assert (
        world.api("north.coord", "PATCH", f"/api/meetings/{meeting_id}", {"status": "gone"}).status_code
        == 422
    )


def test_outcomes_have_several_decisions_and_identifiers_only_for_the_allowed(world: World) -> None:
    meeting_id = world.meeting(attendees=["north.student"])
    case_id = world.cases["N26-1"]
    world.api(
        "north.coord", "POST", f"/api/meetings/{meeting_id}/agenda", {"case_id": case_id, "question": "Q?"}
    )
    coord, student = world.people["north.coord"], world.people["north.student"]
    page = coord.get(f"/meetings/{meeting_id}").text
    assert 'name="decision" value="surgery"' in page and "checked" not in page  # nothing preselected
    outcome = f"/meetings/{meeting_id}/cases/{case_id}/outcome"
    assert coord.post(outcome, notes="no decision").status_code == 400
    assert coord.client.post(outcome, data={"csrf": coord.csrf, "decision": ["magic"]}).status_code == 400
    recorded = coord.client.post(
        outcome,
        data={"csrf": coord.csrf, "decision": ["surgery", "endocrine therapy"], "notes": "WLE then AI."},
    )
    assert recorded.status_code == 303
    room = coord.get(f"/api/meetings/{meeting_id}/room").json()
    assert room["state"]["agenda"][0]["outcome"]["decisions"] == ["surgery", "endocrine therapy"]

    summary = coord.get(f"/meetings/{meeting_id}/summary").text
    assert all(part in summary for part in PATIENT) and "data-print" in summary and "UK local time" in summary
    assert "surgery, endocrine therapy" in summary
    hidden = student.get(f"/meetings/{meeting_id}/summary").text
    assert not any(part in hidden for part in PATIENT) and "not shown to you" in hidden

    header, row = list(csv.reader(io.StringIO(coord.get(f"/meetings/{meeting_id}/outcomes.csv").text)))
    values = dict(zip(header, row, strict=True))
    assert (values["patient_name"], values["nhs_number"], values["date_of_birth"]) == PATIENT
    assert values["decision"] == "surgery, endocrine therapy" and "recorded_uk_time" in values
    header, row = list(csv.reader(io.StringIO(student.get(f"/meetings/{meeting_id}/outcomes.csv").text)))
    values = dict(zip(header, row, strict=True))
    assert (values["patient_name"], values["nhs_number"], values["date_of_birth"]) == ("", "", "")


def test_next_after_pause_at_the_end_of_the_agenda_does_not_start_again(world: World) -> None:
    meeting_id = world.meeting()
    first, last = world.cases["N26-1"], world.cases["N26-2"]
    items = [{"case_id": first}, {"case_id": last}]
    assert (
        world.api("north.coord", "PUT", f"/api/meetings/{meeting_id}/agenda", {"items": items}).status_code
        == 200
    )
    coord = world.people["north.coord"]
    assert coord.post(f"/meetings/{meeting_id}/current", case=first).json()["next"] == last
    assert coord.post(f"/meetings/{meeting_id}/current", case=last).json()["next"] is None
    paused = coord.post(f"/meetings/{meeting_id}/current", case="").json()
    assert paused["current"] is None
    # Before the fix the room counted from the case on screen (none), so "Next" went to case 1.
    assert (paused["last"], paused["next"]) == (last, None)


def test_the_new_routes_are_described(world: World) -> None:
    paths = world.people["north.coord"].get("/api/openapi.json").json()["paths"]
    assert {"get", "post"} <= paths["/api/meetings"].keys()
    assert "patch" in paths["/api/meetings/{meeting_id}"]
    assert {"put", "post"} <= paths["/api/meetings/{meeting_id}/agenda"].keys()
    assert {"post", "delete"} <= paths["/api/meetings/{meeting_id}/attendees"].keys()
    assert "get" in paths["/api/people"]
