"""MDT meetings against a real server: made on the command line, seen only by those taking part,
agenda cases opened to attendees of other organisations, outcomes recorded, signed off, exported
and audited."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import (
    Person,
    Server,
    add_user,
    collab,
    sign_in_with_form,
    start_server,
    stop_server,
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

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.server.data_dir / "collab.sqlite3")

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
    assert attended["south.path"] is not None and attended["north.onc"] is None
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
    assert summary.status_code == 200 and "@media print" in summary.text
    assert summary.text.count('class="signed-off"') == 3
    assert "Wide local excision." in summary.text and "further investigation" in summary.text

    exported = chair.get(f"/meetings/{meeting_id}/outcomes.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    header, *rows = list(csv.reader(io.StringIO(exported.text)))
    assert header[:4] == ["position", "case", "planned_minutes", "decision"]
    assert [(r[0], r[1], r[3], r[7]) for r in rows] == [
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
    assert outside.get(f"/cases/{case_id}").status_code == 404  # the meeting's share has ended
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
