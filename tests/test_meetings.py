"""MDT meetings against a real server: made on the command line, seen only by those taking part,
agenda cases opened to attendees of other organisations, outcomes recorded, signed off, exported
and audited."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Person,
    Server,
    add_slides,
    add_user,
    collab,
    connect_db,
    sign_in_with_form,
    start_server,
    stop_server,
    write_pyramid_tiff,
)

PEOPLE = {
    "north.path": ("pathologist", "North Trust", "Dr North"),
    "north.coord": ("admin", "North Trust", "Ms Coordinator"),
    "north.onc": ("clinician", "North Trust", "Dr Oncology North"),
    "south.path": ("pathologist", "South Trust", "Dr South"),
    "east.path": ("pathologist", "East Trust", "Dr East"),
}
ACCESSIONS = ("M26-001", "M26-002", "M26-003")


@dataclass
class World:
    server: Server
    people: dict[str, Person]
    case_ids: list[str]

    def db(self) -> Any:
        return connect_db(self.server.data_dir)

    def add_meeting(self, *extra: str) -> str:
        result = collab(
            "meetings",
            "add",
            "Breast MDT",
            "--org",
            "North Trust",
            "--starts",
            "2026-12-01T13:00",
            "--chair",
            "north.path",
            "--coordinator",
            "north.coord",
            *extra,
            data_dir=self.server.data_dir,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """North, South and East Trusts, their people, three North cases and a running server."""
    data_dir = tmp_path_factory.mktemp("data")
    for org in ("North Trust", "South Trust", "East Trust"):
        assert collab("orgs", "add", org, data_dir=data_dir).returncode == 0
    for username, (role, org, name) in PEOPLE.items():
        extra = ("--specialty", "oncology") if role == "clinician" else ()
        add_user(data_dir, username, role, org, "--name", name, *extra)
    case_ids = []
    for accession in ACCESSIONS:
        made = collab("cases", "add", accession, "--org", "North Trust", data_dir=data_dir)
        assert made.returncode == 0, made.stderr
        case_ids.append(made.stdout.strip())
    server = start_server(data_dir)
    people = {username: sign_in_with_form(server, username) for username in PEOPLE}
    yield World(server, people, case_ids)
    for person in people.values():
        person.client.close()
    stop_server(server)


def test_the_command_line_makes_a_meeting_and_refuses_clearly(world: World) -> None:
    meeting_id = world.add_meeting("--attendee", "north.onc", "--case", ACCESSIONS[0])
    assert re.fullmatch(r"[0-9a-f]{16}", meeting_id)
    with world.db() as db:
        row = db.execute("SELECT name, starts FROM meetings WHERE id = ?", (meeting_id,)).fetchone()
        assert row == ("Breast MDT", "2026-12-01T13:00")
    for extra, message in (
        (("--case", "NOPE-1"), "collab: no case with accession 'NOPE-1'\n"),
        (("--attendee", "nobody"), "collab: no user named 'nobody'\n"),
    ):
        result = collab(
            "meetings",
            "add",
            "Bad MDT",
            "--org",
            "North Trust",
            "--starts",
            "2026-12-01T13:00",
            "--chair",
            "north.path",
            "--coordinator",
            "north.coord",
            *extra,
            data_dir=world.server.data_dir,
        )
        assert (result.returncode, result.stderr) == (1, message)
    bad_time = collab(
        "meetings",
        "add",
        "Bad MDT",
        "--org",
        "North Trust",
        "--starts",
        "next Tuesday",
        "--chair",
        "north.path",
        "--coordinator",
        "north.coord",
        data_dir=world.server.data_dir,
    )
    assert bad_time.returncode == 1
    assert bad_time.stderr == "collab: 'next Tuesday' is not a date and time such as 2026-12-01T13:00\n"


def test_attendees_see_the_meeting_and_its_cases_outsiders_do_not(world: World) -> None:
    case_id = world.case_ids[0]
    south, east = world.people["south.path"], world.people["east.path"]
    assert south.get(f"/cases/{case_id}").status_code == 404
    meeting_id = world.add_meeting(
        "--attendee", "south.path", "--attendee", "north.onc", "--case", ACCESSIONS[0]
    )

    page = south.get(f"/meetings/{meeting_id}")
    assert page.status_code == 200
    assert "Breast MDT" in page.text and "2026-12-01 13:00" in page.text
    assert f'<a href="/cases/{case_id}">{ACCESSIONS[0]}</a>' in page.text
    assert 'action="/meetings/' not in page.text  # an attendee neither records nor signs off
    assert south.get(f"/cases/{case_id}").status_code == 200
    assert south.get(f"/api/cases/{case_id}").json()["access"] == "contribute"
    assert f'href="/meetings/{meeting_id}"' in south.get("/").text
    with world.db() as db:
        attended = dict(
            db.execute(
                "SELECT u.username, a.attended FROM meeting_attendees a JOIN users u ON u.id = a.user_id"
                " WHERE a.meeting_id = ?",
                (meeting_id,),
            ).fetchall()
        )
        (source,) = db.execute(
            "SELECT source FROM case_shares WHERE case_id = ? AND user_id ="
            " (SELECT id FROM users WHERE username = 'south.path')",
            (case_id,),
        ).fetchone()
    # Opening a page marks no attendance: being in the room (its live connection) does.
    assert attended["south.path"] is None and attended["north.onc"] is None
    assert source == f"meeting:{meeting_id}"

    for path in ("", "/summary", "/outcomes.csv"):
        hidden = east.get(f"/meetings/{meeting_id}{path}")
        assert (hidden.status_code, hidden.text) == (404, "No such meeting.\n")
    assert east.get(f"/cases/{case_id}").status_code == 404
    assert f'href="/meetings/{meeting_id}"' not in east.get("/").text
    refused = east.post(f"/meetings/{meeting_id}/cases/{case_id}/outcome", decision="surgery")
    assert (refused.status_code, refused.text) == (404, "No such meeting.\n")


def test_outcomes_are_recorded_signed_off_exported_and_audited(world: World) -> None:
    agenda = [arg for accession in ACCESSIONS for arg in ("--case", accession)]
    meeting_id = world.add_meeting("--attendee", "south.path", *agenda)
    coord, chair, south = world.people["north.coord"], world.people["north.path"], world.people["south.path"]
    base = f"/meetings/{meeting_id}/cases"
    page = coord.get(f"/meetings/{meeting_id}").text
    assert [page.index(a) for a in ACCESSIONS] == sorted(page.index(a) for a in ACCESSIONS)
    assert page.count("3 min") == 3

    decisions = (("surgery", "Wide local excision."), ("oncology", ""), ("further investigation", "MRI."))
    for case_id, (decision, notes) in zip(world.case_ids, decisions, strict=True):
        recorded = coord.post(f"{base}/{case_id}/outcome", decision=decision, notes=notes)
        assert (recorded.status_code, recorded.headers["location"]) == (
            303,
            f"/meetings/{meeting_id}#case-{case_id}",
        )
    wrong = coord.post(f"{base}/{world.case_ids[0]}/outcome", decision="magic")
    assert wrong.status_code == 400
    not_chair = south.post(f"{base}/{world.case_ids[0]}/sign-off")
    assert (not_chair.status_code, not_chair.text) == (403, "Only the meeting's chair signs outcomes off.\n")
    assert coord.post(f"{base}/{world.case_ids[0]}/sign-off").status_code == 403
    assert south.post(f"{base}/{world.case_ids[0]}/outcome", decision="discharge").status_code == 403
    expired = chair.client.post(f"{base}/{world.case_ids[0]}/sign-off", data={"csrf": "nope"})
    assert expired.status_code == 403

    for case_id in world.case_ids:
        assert chair.post(f"{base}/{case_id}/sign-off").status_code == 303
    again = chair.post(f"{base}/{world.case_ids[0]}/sign-off")
    assert again.status_code == 409
    late = coord.post(f"{base}/{world.case_ids[0]}/outcome", decision="discharge")
    assert (late.status_code, late.text) == (
        409,
        "This outcome has been signed off and can no longer be changed.\n",
    )

    summary = south.get(f"/meetings/{meeting_id}/summary")
    assert summary.status_code == 200 and 'href="/static/css/summary.css"' in summary.text
    assert "@media print" in coord.get("/static/css/summary.css").text  # it prints as a page
    assert summary.text.count('class="signed-off"') == 3
    assert "Wide local excision." in summary.text and "further investigation" in summary.text

    exported = chair.get(f"/meetings/{meeting_id}/outcomes.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    header, *rows = list(csv.reader(io.StringIO(exported.text)))
    assert header[:5] == ["position", "case", "planned_minutes", "minutes_spent", "decision"]
    assert [(r[0], r[1], r[4], r[8]) for r in rows] == [
        ("1", ACCESSIONS[0], "surgery", "Dr North"),
        ("2", ACCESSIONS[1], "oncology", "Dr North"),
        ("3", ACCESSIONS[2], "further investigation", "Dr North"),
    ]

    with world.db() as db:
        audited = db.execute(
            "SELECT event, username, case_id FROM audit WHERE event LIKE 'meeting outcome%'"
            " AND detail LIKE ? ORDER BY id",
            (f"meeting {meeting_id}%",),
        ).fetchall()
    assert audited == [("meeting outcome recorded", "north.coord", c) for c in world.case_ids] + [
        ("meeting outcome signed off", "north.path", c) for c in world.case_ids
    ]


def test_closing_a_meeting_ends_outside_access_and_freezes_its_outcomes(world: World) -> None:
    case_id = world.case_ids[0]
    # east.path takes part in no other meeting here, so this meeting's share is their only access.
    meeting_id = world.add_meeting("--attendee", "east.path", "--case", ACCESSIONS[0])
    coord, outside = world.people["north.coord"], world.people["east.path"]
    assert outside.get(f"/meetings/{meeting_id}").status_code == 200
    assert outside.get(f"/cases/{case_id}").status_code == 200
    assert (
        coord.post(f"/meetings/{meeting_id}/cases/{case_id}/outcome", decision="surgery").status_code == 303
    )

    refused = outside.post(f"/meetings/{meeting_id}/close")
    assert (refused.status_code, refused.text) == (
        403,
        "Only the meeting's chair or coordinator closes it.\n",
    )
    closed = coord.post(f"/meetings/{meeting_id}/close")
    assert (closed.status_code, closed.headers["location"]) == (303, f"/meetings/{meeting_id}")
    assert outside.get(f"/cases/{case_id}").status_code == 403  # the meeting's share has ended
    page = outside.get(f"/meetings/{meeting_id}")
    assert page.status_code == 200 and "Closed on" in page.text  # the record stays readable
    frozen = coord.post(f"/meetings/{meeting_id}/cases/{case_id}/outcome", decision="oncology")
    assert (frozen.status_code, frozen.text) == (
        409,
        "This meeting is closed: its outcomes can no longer be changed.\n",
    )
    assert coord.post(f"/meetings/{meeting_id}/close").status_code == 409
    with world.db() as db:
        events = [
            r[0] for r in db.execute("SELECT event FROM audit WHERE detail = ?", (f"meeting {meeting_id}",))
        ]
    assert "meeting closed" in events


# -- the live meeting room -------------------------------------------------------------------


# What a room page's EventSource asks for; only its stream marks attendance.
EVENT_SOURCE = {"Accept": "text/event-stream"}


def sse_states(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The states a room's event stream sends, in order (heartbeat comments skipped)."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


def step(person: Person, meeting_id: str, case_id: str) -> httpx.Response:
    return person.post(f"/meetings/{meeting_id}/current", case=case_id)


def test_the_chair_and_the_coordinator_move_the_meeting_and_each_step_is_audited(world: World) -> None:
    agenda = [arg for accession in ACCESSIONS for arg in ("--case", accession)]
    meeting_id = world.add_meeting("--attendee", "south.path", *agenda)
    chair, coord, south = world.people["north.path"], world.people["north.coord"], world.people["south.path"]
    first, second, _ = world.case_ids

    refused = step(south, meeting_id, first)
    assert (refused.status_code, refused.text) == (
        403,
        "Only the meeting's chair or coordinator moves the meeting to another case.\n",
    )
    hidden = step(world.people["east.path"], meeting_id, first)
    assert (hidden.status_code, hidden.text) == (404, "No such meeting.\n")
    elsewhere = step(chair, meeting_id, "0123456789abcdef")
    assert (elsewhere.status_code, elsewhere.text) == (404, "That case is not on this meeting's agenda.\n")
    forged = chair.client.post(f"/meetings/{meeting_id}/current", data={"case": first, "csrf": "nope"})
    assert forged.status_code == 403

    moved = step(chair, meeting_id, first)
    assert moved.status_code == 200
    state = moved.json()
    assert state["current"] == first and state["current_since"] is not None
    assert [(i["case_id"], i["presented"]) for i in state["agenda"]] == [
        (first, True),
        (second, False),
        (world.case_ids[2], False),
    ]
    assert step(chair, meeting_id, first).json()["current"] == first  # a second click changes nothing
    assert step(coord, meeting_id, second).json()["current"] == second
    paused = step(coord, meeting_id, "").json()
    assert paused["current"] is None and paused["current_since"] is None

    with world.db() as db:
        rows = db.execute(
            "SELECT case_id, ended IS NOT NULL FROM meeting_presentations WHERE meeting_id = ? ORDER BY id",
            (meeting_id,),
        ).fetchall()
        audited = db.execute(
            "SELECT username, case_id FROM audit WHERE event = 'meeting case presented' AND detail LIKE ?"
            " ORDER BY id",
            (f"meeting {meeting_id}%",),
        ).fetchall()
    assert rows == [(first, 1), (second, 1)]
    assert audited == [("north.path", first), ("north.coord", second), ("north.coord", None)]

    # The meeting's timeline: which case was on screen, in order, each replayable on its page.
    page = chair.client.get(f"/meetings/{meeting_id}").text
    timeline = page[page.index('class="timeline-stretches"') :]
    assert [timeline.index(f'data-case-id="{c}"') for c in (first, second)] == sorted(
        timeline.index(f'data-case-id="{c}"') for c in (first, second)
    )
    assert f'href="/cases/{first}?timeline"' in timeline and f'href="/cases/{second}?timeline"' in timeline


def test_time_spent_per_case_is_in_the_room_the_summary_and_the_csv(world: World) -> None:
    agenda = [arg for accession in ACCESSIONS for arg in ("--case", accession)]
    meeting_id = world.add_meeting(*agenda)
    chair = world.people["north.path"]
    first, second, third = world.case_ids
    step(chair, meeting_id, first)
    step(chair, meeting_id, second)
    step(chair, meeting_id, first)  # back to the first case: its time adds up
    # Times are the server's clock; move the recorded stretches back rather than wait.
    with world.db() as db:
        stretches = db.execute(
            "SELECT id, ended FROM meeting_presentations WHERE meeting_id = ? ORDER BY id", (meeting_id,)
        ).fetchall()
        ids = [row_id for row_id, _ in stretches]
        for (row_id, ended), seconds in zip(stretches[:2], (150, 45), strict=True):
            started = datetime.fromisoformat(ended) - timedelta(seconds=seconds)
            db.execute(
                "UPDATE meeting_presentations SET started = ? WHERE id = ?",
                (started.isoformat(timespec="seconds"), row_id),
            )
        a_minute_ago = datetime.now(UTC) - timedelta(seconds=60)
        db.execute(
            "UPDATE meeting_presentations SET started = ? WHERE id = ?",
            (a_minute_ago.isoformat(timespec="seconds"), ids[2]),
        )

    room = chair.get(f"/api/meetings/{meeting_id}/room").json()
    spent = {i["case_id"]: i["seconds_spent"] for i in room["state"]["agenda"]}
    assert spent[second] == 45 and spent[third] == 0
    assert 210 <= spent[first] < 240  # 150 s before, and the minute it has been on screen since
    assert room["state"]["current"] == first

    summary = chair.get(f"/meetings/{meeting_id}/summary").text
    assert "0:45" in summary and "not presented" in summary
    exported = chair.get(f"/meetings/{meeting_id}/outcomes.csv").text
    header, *rows = list(csv.reader(io.StringIO(exported)))
    assert header[2:4] == ["planned_minutes", "minutes_spent"]
    assert [(r[1], r[3]) for r in rows][1:] == [(ACCESSIONS[1], "0.8"), (ACCESSIONS[2], "0.0")]


def test_the_event_stream_brings_each_change_to_everyone_in_the_room(world: World) -> None:
    agenda = [arg for accession in ACCESSIONS for arg in ("--case", accession)]
    meeting_id = world.add_meeting("--attendee", "south.path", "--attendee", "north.onc", *agenda)
    chair, coord = world.people["north.path"], world.people["north.coord"]
    south, onc = world.people["south.path"], world.people["north.onc"]
    first = world.case_ids[0]
    hidden = world.people["east.path"].get(f"/meetings/{meeting_id}/events")
    assert (hidden.status_code, hidden.text) == (404, "No such meeting.\n")

    events = f"/meetings/{meeting_id}/events"
    with onc.client.stream("GET", events, headers=EVENT_SOURCE, timeout=10) as onc_stream:
        assert onc_stream.status_code == 200
        assert onc_stream.headers["content-type"].startswith("text/event-stream")
        onc_states = sse_states(onc_stream)
        assert next(onc_states)["current"] is None
        with south.client.stream("GET", events, headers=EVENT_SOURCE, timeout=10) as south_stream:
            south_states = sse_states(south_stream)
            joined = next(s for s in onc_states if len(s["here"]) == 2)
            assert sorted(p["name"] for p in joined["here"]) == ["Dr Oncology North", "Dr South"]

            assert step(chair, meeting_id, first).status_code == 200
            assert next(s for s in south_states if s["current"] == first)["agenda"][0]["presented"]
            assert next(s for s in onc_states if s["current"] == first)

            recorded = coord.client.post(
                f"/meetings/{meeting_id}/cases/{first}/outcome",
                data={"csrf": coord.csrf, "decision": "surgery", "notes": "Wide local excision."},
                headers={"Accept": "application/json"},
            )
            assert (recorded.status_code, recorded.json()) == (200, {"ok": True})
            outcome = next(s for s in south_states if s["agenda"][0]["outcome"])["agenda"][0]["outcome"]
            assert (outcome["decision"], outcome["notes"], outcome["recorded_by"]) == (
                "surgery",
                "Wide local excision.",
                "Ms Coordinator",
            )
            signed = chair.client.post(
                f"/meetings/{meeting_id}/cases/{first}/sign-off",
                data={"csrf": chair.csrf},
                headers={"Accept": "application/json"},
            )
            assert signed.status_code == 200
            outcome = next(s for s in onc_states if s["agenda"][0]["outcome"]["signed_off"])["agenda"][0][
                "outcome"
            ]
            assert outcome["signed_off_by"] == "Dr North"
        # South closed the page: the room no longer counts them as here.
        left = next(s for s in onc_states if len(s["here"]) == 1)
        assert [p["name"] for p in left["here"]] == ["Dr Oncology North"]
    attendance = {
        a["name"]: a["attended"]
        for a in chair.get(f"/api/meetings/{meeting_id}/room").json()["state"]["attendees"]
    }
    assert attendance["Dr South"] is not None  # being in the room marked it


def test_the_room_shows_each_person_only_what_they_may_see_of_a_case(world: World, tmp_path: Path) -> None:
    made = collab(
        "cases",
        "add",
        "M26-010",
        "--org",
        "North Trust",
        "--patient-name",
        "Margaret Ellis",
        "--nhs-number",
        "943 476 5919",
        "--specimen",
        "Left breast, core biopsy",
        "--clinical-details",
        "Palpable mass, 2 cm.",
        data_dir=world.server.data_dir,
    )
    assert made.returncode == 0, made.stderr
    case_id = made.stdout.strip()
    add_slides(world.server.data_dir, write_pyramid_tiff(tmp_path / "m.tiff", 600, 400), accession="M26-010")
    if "north.student" not in world.people:
        add_user(world.server.data_dir, "north.student", "student", "North Trust", "--name", "A Student")
        world.people["north.student"] = sign_in_with_form(world.server, "north.student")
    meeting_id = world.add_meeting(
        "--attendee",
        "south.path",
        "--attendee",
        "north.student",
        "--attendee",
        "north.onc",
        "--case",
        "M26-010",
    )
    chair, onc = world.people["north.path"], world.people["north.onc"]
    student, outsider = world.people["north.student"], world.people["east.path"]

    for path in (f"/meetings/{meeting_id}/room", f"/api/meetings/{meeting_id}/room"):
        assert outsider.get(path).status_code == 404
    page = onc.get(f"/meetings/{meeting_id}/room")
    assert page.status_code == 200
    assert "Margaret Ellis" in page.text and "Palpable mass, 2 cm." in page.text
    assert f'href="/meetings/{meeting_id}/room"' in onc.get(f"/meetings/{meeting_id}").text
    (item,) = onc.get(f"/api/meetings/{meeting_id}/room").json()["cases"]
    assert item["title"] == "M26-010" and item["frame"] == f"/cases/{case_id}?meeting={meeting_id}"
    assert item["summary"]["patient"]["nhs_number"] == "943 476 5919"
    me = onc.get(f"/api/meetings/{meeting_id}/room").json()["me"]
    assert me == {
        "id": me["id"],
        "may_step": False,
        "may_record": False,
        "may_sign_off": False,
        "presents": False,
    }

    # A student sees the case anonymised: no name, number or clinical details reach the page.
    student_page = student.get(f"/meetings/{meeting_id}/room").text
    assert "Margaret Ellis" not in student_page and "943 476 5919" not in student_page
    assert "M26-010" not in student_page and "Palpable mass" not in student_page
    (item,) = student.get(f"/api/meetings/{meeting_id}/room").json()["cases"]
    assert item["title"] == f"Case {case_id[:6]}"
    assert item["summary"] == {
        "priority": "routine",
        "organisation": "North Trust",
        "specimen": "Left breast, core biopsy",
    }

    # The case page in the room: embedded; the chair presents there, the others follow.
    framed = chair.get(f"/cases/{case_id}?meeting={meeting_id}").text
    assert "embedded" in _body_classes(framed)
    assert _session(framed)["meeting"] == {"id": meeting_id, "presents": True}
    assert _session(onc.get(f"/cases/{case_id}?meeting={meeting_id}").text)["meeting"] == {
        "id": meeting_id,
        "presents": False,
    }
    plain = chair.get(f"/cases/{case_id}?meeting=0123456789abcdef").text
    assert "embedded" not in _body_classes(plain) and _session(plain)["meeting"] is None


def _body_classes(page: str) -> list[str]:
    found = re.search(r'<body(?: class="([^"]*)")?', page)
    assert found
    return (found[1] or "").split()


def _session(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="session-data">(.*?)</script>', page, re.S)
    assert found
    return dict(json.loads(found[1]))


def test_closing_the_meeting_stops_the_clock_and_the_steps(world: World) -> None:
    meeting_id = world.add_meeting("--case", ACCESSIONS[0], "--case", ACCESSIONS[1])
    chair, coord = world.people["north.path"], world.people["north.coord"]
    assert step(chair, meeting_id, world.case_ids[0]).json()["current"] == world.case_ids[0]
    assert coord.post(f"/meetings/{meeting_id}/close").status_code == 303

    state = chair.get(f"/api/meetings/{meeting_id}/room").json()["state"]
    assert state["closed"] is not None and state["current"] is None
    assert state["agenda"][0]["presented"] and not state["agenda"][1]["presented"]
    late = step(chair, meeting_id, world.case_ids[1])
    assert (late.status_code, late.text) == (409, "This meeting is closed.\n")
