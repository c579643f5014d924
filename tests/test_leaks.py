"""What a participant learns or leaves behind without meaning to: formulas in CSV exports, cases
and people one may not see, views and exports that go unaudited, attendance marked by another
site, and API tokens that cannot be listed or revoked. Real server, real SQLite."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Person,
    Server,
    add_user,
    api_token,
    collab,
    connect_db,
    sign_in_with_form,
    start_server,
    stop_server,
)

ORGS = (("North Trust", "North Network"), ("North Clinic", "North Network"), ("South Trust", None))
PEOPLE = {
    "north.path": ("pathologist", "North Trust", "Dr North"),
    "north.coord": ("admin", "North Trust", "Ms Coordinator"),
    "clinic.onc": ("clinician", "North Clinic", "Dr Clinic"),
    "south.path": ("pathologist", "South Trust", "Dr South"),
    "south.onc": ("clinician", "South Trust", "Dr Hidden South"),
}


@dataclass
class World:
    server: Server
    people: dict[str, Person]
    north_case: str
    south_case: str
    meeting_id: str

    def db(self) -> Any:
        return connect_db(self.server.data_dir)

    def attended(self, username: str) -> str | None:
        with self.db() as db:
            row = db.execute(
                "SELECT a.attended FROM meeting_attendees a JOIN users u ON u.id = a.user_id"
                " WHERE a.meeting_id = ? AND u.username = ?",
                (self.meeting_id, username),
            ).fetchone()
        return None if row is None else row[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two trusts of one network and one outside it, their people, a case of each side, a meeting."""
    data_dir = tmp_path_factory.mktemp("data")
    for org, network in ORGS:
        extra = ("--network", network) if network else ()
        assert collab("orgs", "add", org, *extra, data_dir=data_dir).returncode == 0
    for username, (role, org, name) in PEOPLE.items():
        extra = ("--specialty", "oncology") if role == "clinician" else ()
        add_user(data_dir, username, role, org, "--name", name, *extra)
    case_ids = []
    for accession, org in (("N26-001", "North Trust"), ("SOUTH-SECRET-9", "South Trust")):
        made = collab("cases", "add", accession, "--org", org, data_dir=data_dir)
        assert made.returncode == 0, made.stderr
        case_ids.append(made.stdout.strip())
    meeting = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2026-12-01T13:00",
        "--chair", "north.path", "--coordinator", "north.coord", "--attendee", "south.path",
        "--case", "N26-001", data_dir=data_dir,
    )  # fmt: skip
    assert meeting.returncode == 0, meeting.stderr
    server = start_server(data_dir)
    # Everyone signs in before any test fails a sign-in on purpose (failures are throttled).
    people = {username: sign_in_with_form(server, username) for username in PEOPLE}
    yield World(server, people, case_ids[0], case_ids[1], meeting.stdout.strip())
    for person in people.values():
        person.client.close()
    stop_server(server)


def _fail_sign_in(server: Server, username: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert csrf
        failed = client.post(
            "/login", data={"username": username, "password": "not it at all", "csrf": csrf[1]}
        )
        assert failed.status_code == 401


def test_every_csv_neutralises_cells_a_spreadsheet_would_run(world: World) -> None:
    formulas = ('=HYPERLINK("http://x.example","a")', "+1+cmd|'/C calc'!A0", "-2+3", "@SUM(1,2)")
    for username in formulas:  # a failed sign-in records the username as typed
        _fail_sign_in(world.server, username)
    admin = world.people["north.coord"]
    audit = admin.get("/api/audit?format=csv&event=login+failed")
    assert audit.status_code == 200
    usernames = [row["username"] for row in csv.DictReader(io.StringIO(audit.text))]
    assert sorted(usernames) == sorted("'" + u for u in formulas)

    outcome = f"/meetings/{world.meeting_id}/cases/{world.north_case}/outcome"
    exported = []
    for notes in formulas:
        assert admin.post(outcome, decision="surgery", notes=notes).status_code == 303
        text = admin.get(f"/meetings/{world.meeting_id}/outcomes.csv").text
        exported.append(next(csv.DictReader(io.StringIO(text)))["notes"])
    assert exported == ["'" + n for n in formulas]
    # Tab and carriage return lead no field the forms keep (they are trimmed); the helper both use:
    from collab.web.csvsafe import safe_cell

    assert [safe_cell(v) for v in ("\tx", "\rx", "x=1", "", 3, -2, None)] == [
        "'\tx",
        "'\rx",
        "x=1",
        "",
        3,
        -2,
        None,
    ]


def test_teaching_answers_a_case_one_may_not_see_as_one_that_does_not_exist(world: World) -> None:
    north = world.people["north.path"]
    hidden = north.post("/teaching", title="Year 3", case=world.south_case)
    unknown = north.post("/teaching", title="Year 3", case="0123456789abcdef")
    assert (hidden.status_code, hidden.text) == (unknown.status_code, unknown.text)
    assert hidden.status_code == 400 and "SOUTH-SECRET-9" not in hidden.text


def test_people_one_may_not_find_are_answered_as_unknown_usernames(world: World) -> None:
    north = world.people["north.path"]

    def ask(to: str) -> tuple[int, str]:
        answer = north.post(f"/cases/{world.north_case}/opinions", to=to, question="Q?")
        return answer.status_code, answer.text.replace(repr(to), "'X'")

    def share(to: str) -> tuple[int, str]:
        answer = north.post(f"/cases/{world.north_case}/shares", **{"with": to, "access": "read"})
        return answer.status_code, answer.text.replace(repr(to), "'X'")

    # A clinician of a trust outside one's network is, to a pathologist, no one at all.
    hidden = ask("south.onc")
    assert "Dr Hidden South" not in hidden[1]
    assert hidden == ask("no.such.person")
    assert share("south.onc") == share("no.such.person")
    with world.db() as db:
        shared = "SELECT COUNT(*) FROM case_shares s JOIN users u ON u.id = s.user_id WHERE u.username = ?"
        assert db.execute(shared, ("south.onc",)).fetchone() == (0,)
    # Colleagues of one's network are found; so are pathologists anywhere, who give opinions.
    assert ask("clinic.onc") == (
        400,
        "Dr Clinic is not a pathologist: a second opinion is asked of a pathologist.\n",
    )
    asked = north.post(f"/cases/{world.north_case}/opinions", to="south.path", question="Q?")
    assert asked.status_code == 303, asked.text
    [request] = north.get(f"/api/cases/{world.north_case}").json()["opinions"]
    assert north.post(f"/opinions/{request['id']}/withdraw").status_code == 303


def test_exports_timeline_summary_and_room_json_are_audited(world: World) -> None:
    north = world.people["north.path"]
    meeting, case = world.meeting_id, world.north_case
    for path in (
        f"/api/cases/{case}/annotations.geojson",
        f"/api/cases/{case}/timeline",
        f"/meetings/{meeting}",
        f"/meetings/{meeting}/summary",
        f"/meetings/{meeting}/outcomes.csv",
        f"/api/meetings/{meeting}/room",
    ):
        assert north.get(path).status_code == 200, path
    with world.db() as db:
        rows = db.execute(
            "SELECT event, username, client, case_id, detail FROM audit WHERE event IN"
            " ('annotations exported', 'timeline viewed', 'meeting viewed', 'meeting exported')"
            " AND username = 'north.path' ORDER BY id"
        ).fetchall()
    assert [(event, user, client, case_id) for event, user, client, case_id, _ in rows] == [
        ("annotations exported", "north.path", "127.0.0.1", case),
        ("timeline viewed", "north.path", "127.0.0.1", case),
        ("meeting viewed", "north.path", "127.0.0.1", None),
        ("meeting viewed", "north.path", "127.0.0.1", None),
        ("meeting exported", "north.path", "127.0.0.1", None),
        ("meeting viewed", "north.path", "127.0.0.1", None),
    ]
    assert all(f"meeting {meeting}" in detail for *_, detail in rows[2:])


def _first_state(person: Person, meeting_id: str, accept: str) -> dict[str, Any]:
    with person.client.stream("GET", f"/meetings/{meeting_id}/events", headers={"Accept": accept}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("data: "):
                state: dict[str, Any] = json.loads(line[len("data: ") :])
                return state
    raise AssertionError("the stream ended before sending a state")


def test_only_the_rooms_live_connection_marks_attendance(world: World) -> None:
    south = world.people["south.path"]
    # Pages (which another site can open by a top-level navigation) change nothing.
    assert south.get(f"/meetings/{world.meeting_id}").status_code == 200
    assert south.get(f"/meetings/{world.meeting_id}/room").status_code == 200
    assert world.attended("south.path") is None
    # Nor does the stream's address opened as a page: only the room's EventSource counts.
    _first_state(south, world.meeting_id, "text/html,application/xhtml+xml")
    assert world.attended("south.path") is None
    state = _first_state(south, world.meeting_id, "text/event-stream")
    [me] = [a for a in state["attendees"] if a["name"] == "Dr South"]
    assert me["attended"] is not None
    assert world.attended("south.path") == me["attended"]


def _tokens(world: World, username: str) -> list[list[str]]:
    listed = collab("users", "tokens", username, data_dir=world.server.data_dir)
    assert listed.returncode == 0, listed.stderr
    return [line.split("\t") for line in listed.stdout.splitlines()]


def test_api_tokens_are_listed_with_last_use_and_revoked_at_once(world: World) -> None:
    data_dir = world.server.data_dir
    first, second = api_token(data_dir, "clinic.onc"), api_token(data_dir, "clinic.onc")
    header, *rows = _tokens(world, "clinic.onc")
    assert header == ["id", "created", "last used", "status", "scope"]
    assert [(r[2], r[3]) for r in rows] == [("never", "active"), ("never", "active")]
    first_id, second_id = rows[0][0], rows[1][0]

    def me(token: str) -> int:
        return httpx.get(
            f"{world.server.url}/api/worklist", headers={"Authorization": f"Bearer {token}"}
        ).status_code

    assert me(first) == 200
    _, *rows = _tokens(world, "clinic.onc")
    assert rows[0][2] != "never" and rows[1][2] == "never"
    listed = collab("users", "tokens", "clinic.onc", data_dir=data_dir).stdout
    assert first not in listed and second not in listed

    revoked = collab("users", "token", "clinic.onc", "--revoke", first_id, data_dir=data_dir)
    assert (revoked.returncode, revoked.stdout) == (0, f"token {first_id} of clinic.onc revoked\n")
    assert me(first) == 401  # at once, though this server answered for it a moment ago
    assert me(second) == 200
    _, *rows = _tokens(world, "clinic.onc")
    assert rows[0][3].startswith("revoked ") and rows[1][3] == "active"
    # Another person's token, or one that never was, is not this person's to revoke.
    for who, token_id in (("south.onc", second_id), ("clinic.onc", "999")):
        refused = collab("users", "token", who, "--revoke", token_id, data_dir=data_dir)
        assert (refused.returncode, refused.stderr) == (1, f"collab: {who} has no token {token_id}\n")
    assert me(second) == 200
    with world.db() as db:
        events = db.execute(
            "SELECT event, detail FROM audit WHERE username = 'clinic.onc' AND event LIKE 'token %'"
            " ORDER BY id"
        ).fetchall()
    assert events == [
        ("token created", f"token {first_id}"),
        ("token created", f"token {second_id}"),
        ("token revoked", f"token {first_id}"),
    ]
