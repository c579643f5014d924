"""Second opinions against a real server: asking, the requestee's steps, access that lives
exactly as long as the request, the worklist, clear refusals and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets

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
from tests.yclient import YClient

PEOPLE = {
    "north.path": ("pathologist", "North Trust", "Dr North"),
    "north.trainee": ("trainee", "North Trust", "Dr Trainee"),
    "south.path": ("pathologist", "South Trust", "Dr South"),
    "south.path2": ("pathologist", "South Trust", "Dr Second South"),
    "south.onc": ("clinician", "South Trust", "Dr Oncology South"),
    "east.path": ("pathologist", "East Trust", "Dr East"),
}


@dataclass
class World:
    server: Server
    people: dict[str, Person]
    slides_dir: Path
    made: int = 0

    def new_case(self) -> tuple[str, str]:
        """A new case of North Trust with one slide: (case id, slide id)."""
        self.made += 1
        accession = f"S26-{self.made:03d}"
        data_dir = self.server.data_dir
        result = collab("cases", "add", accession, "--org", "North Trust", data_dir=data_dir)
        assert result.returncode == 0, result.stderr
        slide = write_pyramid_tiff(self.slides_dir / f"{accession}.tiff", 600, 500, seed=self.made)
        [slide_id] = add_slides(data_dir, slide, accession=accession)
        with connect_db(data_dir) as db:
            (case_id,) = db.execute("SELECT id FROM cases WHERE accession = ?", (accession,)).fetchone()
        return case_id, slide_id

    def audit(self, case_id: str) -> list[tuple[str, str, str]]:
        """(event, username, detail) of the case's opinion entries, oldest first, read from the file."""
        with connect_db(self.server.data_dir) as db:
            rows = db.execute(
                "SELECT event, username, detail FROM audit WHERE case_id = ? AND event LIKE 'opinion %'"
                " ORDER BY id",
                (case_id,),
            ).fetchall()
        return [tuple(row) for row in rows]

    def ws_url(self, case_id: str) -> str:
        return self.server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """North, South and East Trusts and their people, a running server, everyone signed in."""
    data_dir = tmp_path_factory.mktemp("data")
    for org in ("North Trust", "South Trust", "East Trust"):
        assert collab("orgs", "add", org, data_dir=data_dir).returncode == 0
    for username, (role, org, name) in PEOPLE.items():
        extra = ("--specialty", "oncology") if role == "clinician" else ()
        add_user(data_dir, username, role, org, "--name", name, *extra)
    server = start_server(data_dir)
    people = {username: sign_in_with_form(server, username, with_token=True) for username in PEOPLE}
    yield World(server, people, tmp_path_factory.mktemp("slides"))
    for person in people.values():
        person.client.close()
    stop_server(server)


def _ask(world: World, case_id: str, to: str, question: str, *, urgent: bool = False) -> int:
    """north.path asks; returns the new request's id."""
    fields = {"to": to, "question": question} | ({"urgent": "1"} if urgent else {})
    response = world.people["north.path"].post(f"/cases/{case_id}/opinions", **fields)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/cases/{case_id}#opinions"
    asked = world.people["north.path"].get(f"/api/cases/{case_id}").json()["opinions"]
    return int(asked[-1]["id"])


def _sees(person: Person, case_id: str, slide_id: str) -> dict[str, int]:
    """Status codes of the case page, its JSON and a tile of its slide."""
    return {
        "page": person.get(f"/cases/{case_id}").status_code,
        "json": person.get(f"/api/cases/{case_id}").status_code,
        "tile": person.get(f"/slides/{slide_id}_files/0/0_0.jpeg").status_code,
    }


SEES = {"page": 200, "json": 200, "tile": 200}
HIDDEN = {"page": 404, "json": 404, "tile": 404}
ENDED = {"page": 403, "json": 403, "tile": 403}  # they knew the case: told their access ended


async def _ws_refused(world: World, case_id: str, person: Person) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            world.ws_url(case_id), additional_headers={"Authorization": f"Bearer {person.token}"}
        )
    return refused.value.response.status_code


def _opinions_for(person: Person, case_ids: set[str]) -> list[dict[str, object]]:
    listed = person.get("/api/worklist").json()["opinions"]
    return [o for o in listed if o["case"]["id"] in case_ids]


def test_a_pathologist_is_asked_sees_the_case_answers_and_access_ends(world: World) -> None:
    case_id, slide_id = world.new_case()
    north, south = world.people["north.path"], world.people["south.path"]
    assert _sees(south, case_id, slide_id) == HIDDEN
    assert asyncio.run(_ws_refused(world, case_id, south)) == 403

    request_id = _ask(world, case_id, "south.path", "Is this invasive? Please check margins.", urgent=True)

    [listed] = _opinions_for(south, {case_id})
    assert listed["id"] == request_id and listed["state"] == "requested" and listed["urgent"] is True
    assert listed["case"] == {"id": case_id, "title": f"S26-{world.made:03d}"}
    assert listed["from"] == {"name": "Dr North", "organisation": "North Trust"}
    assert listed["question"] == "Is this invasive? Please check margins."
    assert listed["actions"] == ["accept", "decline"]
    worklist = south.get("/").text
    assert worklist.index("Opinions requested from you") < worklist.index("<h2>Cases</h2>")
    assert "Is this invasive? Please check margins." in worklist
    assert f'action="/opinions/{request_id}/accept"' in worklist
    assert _sees(south, case_id, slide_id) == SEES
    assert south.get(f"/api/cases/{case_id}").json()["access"] == "contribute"

    answer_early = south.post(f"/opinions/{request_id}/answer", opinion="Invasive.")
    assert (answer_early.status_code, answer_early.text) == (409, "Accept the request before answering it.\n")
    accepted = south.post(f"/opinions/{request_id}/accept")
    assert (accepted.status_code, accepted.headers["location"]) == (303, f"/cases/{case_id}")
    page = south.get(f"/cases/{case_id}").text
    assert 'name="opinion"' in page and "You are in the live session of this case" in page
    empty = south.post(f"/opinions/{request_id}/answer", opinion="   ")
    assert (empty.status_code, empty.text) == (400, "Write your opinion before sending the answer.\n")

    async def live_then_answer() -> None:
        live = await YClient(world.ws_url(case_id), south.token).connect()
        await asyncio.wait_for(live.synced.wait(), 10)  # the live session accepts the requestee
        answered = await asyncio.to_thread(
            south.post, f"/opinions/{request_id}/answer", opinion="Invasive ductal carcinoma; margins clear."
        )
        assert (answered.status_code, answered.headers["location"]) == (303, "/")
        # A tab left open on the case is closed as the request closes, and cannot come back.
        await asyncio.wait_for(live.closed.wait(), 10)
        assert live.close_code == 4403
        assert await _ws_refused(world, case_id, south) == 403

    asyncio.run(live_then_answer())
    assert _sees(south, case_id, slide_id) == ENDED
    assert south.get(f"/cases/{case_id}").text.startswith("Your access to this case has ended")
    assert _opinions_for(south, {case_id}) == []
    again = south.post(f"/opinions/{request_id}/answer", opinion="Second thoughts.")
    assert again.status_code == 409
    assert again.text == "This request has been answered and is closed: it can no longer be answered.\n"

    [seen] = north.get(f"/api/cases/{case_id}").json()["opinions"]
    assert (seen["state"], seen["opinion"], seen["answered_by"]) == (
        "answered",
        "Invasive ductal carcinoma; margins clear.",
        "Dr South",
    )
    assert "Invasive ductal carcinoma; margins clear." in north.get(f"/cases/{case_id}").text
    mine = north.get("/api/opinions").json()
    assert [o["id"] for o in mine["by_me"] if o["case"]["id"] == case_id] == [request_id]
    theirs = [o for o in south.get("/api/opinions").json()["to_me"] if o["id"] == request_id]
    # Kept for the record, but the case is named as in an anonymised view now it is closed to them.
    assert theirs[0]["state"] == "answered" and theirs[0]["can_open_case"] is False
    assert theirs[0]["case"]["title"] == f"Case {case_id[:6]}"
    assert world.audit(case_id) == [
        (
            "opinion requested",
            "north.path",
            f"request {request_id} to user south.path, urgent; case shared until it closes",
        ),
        ("opinion accepted", "south.path", f"request {request_id}"),
        ("opinion answered", "south.path", f"request {request_id}; access to the case ended"),
    ]


def test_an_organisation_is_asked_its_pathologists_answer_for_it(world: World) -> None:
    case_id, slide_id = world.new_case()
    people = world.people
    request_id = _ask(world, case_id, "South Trust", "Second opinion on grade, please.")

    for username in ("south.path", "south.path2"):
        [listed] = _opinions_for(people[username], {case_id})
        assert listed["to_organisation"] is True and listed["to"]["organisation"] == "South Trust"
        assert _sees(people[username], case_id, slide_id) == SEES
    # The request is for South's pathologists, not everyone who works there, nor anyone else.
    for username in ("south.onc", "east.path"):
        assert _opinions_for(people[username], {case_id}) == []
        assert _sees(people[username], case_id, slide_id) == HIDDEN
    stranger = people["east.path"].post(f"/opinions/{request_id}/accept")
    assert (stranger.status_code, stranger.text) == (404, "No such request.\n")
    colleague = people["north.trainee"].post(f"/opinions/{request_id}/accept")
    assert colleague.status_code == 403
    assert colleague.text == (
        "This request was not asked of you: only pathologists of the organisation asked can accept it.\n"
    )
    withdraw = people["south.path"].post(f"/opinions/{request_id}/withdraw")
    assert (withdraw.status_code, withdraw.text) == (
        403,
        "Only the pathologist who asked for this opinion can withdraw it.\n",
    )

    assert people["south.path2"].post(f"/opinions/{request_id}/accept").status_code == 303
    [listed] = _opinions_for(people["south.path"], {case_id})
    assert (listed["state"], listed["accepted_by"]) == ("accepted", "Dr Second South")
    declined = people["south.path"].post(f"/opinions/{request_id}/decline")
    assert (declined.status_code, declined.headers["location"]) == (303, "/")

    for username in ("south.path", "south.path2"):
        assert _sees(people[username], case_id, slide_id) == ENDED
        assert asyncio.run(_ws_refused(world, case_id, people[username])) == 403
    # South's oncologist never had it through that request: still no such case for them.
    assert _sees(people["south.onc"], case_id, slide_id) == HIDDEN
    late = people["south.path2"].post(f"/opinions/{request_id}/answer", opinion="Grade 2.")
    assert (late.status_code, late.text) == (
        409,
        "This request has been declined and is closed: it can no longer be answered.\n",
    )
    assert [(event, who) for event, who, _ in world.audit(case_id)] == [
        ("opinion requested", "north.path"),
        ("opinion accepted", "south.path2"),
        ("opinion declined", "south.path"),
    ]


def test_withdrawing_a_request_ends_access_at_once(world: World) -> None:
    case_id, slide_id = world.new_case()
    south = world.people["south.path"]
    request_id = _ask(world, case_id, "south.path", "ER/PR please.")
    assert south.post(f"/opinions/{request_id}/accept").status_code == 303

    async def live_then_withdraw() -> None:
        live = await YClient(world.ws_url(case_id), south.token).connect()
        await asyncio.wait_for(live.synced.wait(), 10)
        withdrawn = await asyncio.to_thread(
            world.people["north.path"].post, f"/opinions/{request_id}/withdraw"
        )
        assert (withdrawn.status_code, withdrawn.headers["location"]) == (303, f"/cases/{case_id}#opinions")
        await asyncio.wait_for(live.closed.wait(), 10)
        assert live.close_code == 4403

    asyncio.run(live_then_withdraw())
    assert _sees(south, case_id, slide_id) == ENDED
    assert south.post(f"/opinions/{request_id}/answer", opinion="Too late.").status_code == 409
    assert [event for event, _, _ in world.audit(case_id)] == [
        "opinion requested",
        "opinion accepted",
        "opinion withdrawn",
    ]


def test_urgent_requests_come_first_then_the_longest_waiting(world: World) -> None:
    first, second, last = (world.new_case()[0] for _ in range(3))
    _ask(world, first, "east.path", "First asked, routine.")
    _ask(world, second, "east.path", "Second asked, routine.")
    _ask(world, last, "east.path", "Last asked, urgent.", urgent=True)
    east = world.people["east.path"]
    listed = _opinions_for(east, {first, second, last})
    assert [o["question"] for o in listed] == [
        "Last asked, urgent.",
        "First asked, routine.",
        "Second asked, routine.",
    ]
    page = east.get("/").text
    assert (
        page.index("Last asked, urgent.") < page.index("First asked, routine.") < page.index("Second asked")
    )


def test_a_share_made_by_hand_outlives_an_opinion(world: World) -> None:
    case_id, slide_id = world.new_case()
    north, south = world.people["north.path"], world.people["south.path"]
    assert (
        north.post(f"/cases/{case_id}/shares", **{"with": "south.path", "access": "read"}).status_code == 303
    )
    request_id = _ask(world, case_id, "south.path", "Anything I missed?")
    again = north.post(f"/cases/{case_id}/opinions", to="south.path", question="Again?")
    assert (again.status_code, again.text) == (
        400,
        "Dr South has already been asked about this case, and that request is still open.\n",
    )
    shares = north.get(f"/api/cases/{case_id}").json()["shares"]
    assert [(s["user"], s["contributing"], s["for_opinion"]) for s in shares] == [
        ("south.path", False, False),
        ("south.path", True, True),
    ]
    # The request's share ends with the request, not by hand.
    refused = north.post(f"/cases/{case_id}/shares/{shares[1]['id']}/revoke")
    assert (refused.status_code, refused.text) == (
        409,
        "This share belongs to a second-opinion request: withdraw the request instead.\n",
    )
    assert south.get(f"/api/cases/{case_id}").json()["access"] == "contribute"
    assert north.post(f"/opinions/{request_id}/withdraw").status_code == 303
    assert _sees(south, case_id, slide_id) == SEES  # still shared by hand, read-only
    assert south.get(f"/api/cases/{case_id}").json()["access"] == "read"


@pytest.mark.parametrize(
    ("asker", "to", "question", "status", "message"),
    [
        ("north.path", "nobody", "Q?", 400, "No pathologist or organisation is called 'nobody'."),
        ("north.path", "north.path", "Q?", 400, "You cannot ask yourself for a second opinion."),
        (
            "north.path",
            "North Trust",
            "Q?",
            400,
            "Ask a colleague in your own organisation by username;"
            " a request to an organisation is for another organisation.",
        ),
        (
            "north.path",
            "north.trainee",
            "Q?",
            400,
            "Dr Trainee is not a pathologist: a second opinion is asked of a pathologist.",
        ),
        # A clinician of another trust is not someone to find: answered as an unknown username.
        ("north.path", "south.onc", "Q?", 400, "No pathologist or organisation is called 'south.onc'."),
        ("north.path", "south.path", "  ", 400, "Write the question you would like answered."),
        (
            "north.trainee",
            "south.path",
            "Q?",
            403,
            "Only pathologists and administrators of the owning organisation ask for a second opinion.",
        ),
        ("east.path", "south.path", "Q?", 404, "No such case."),
    ],
)
def test_requests_that_cannot_be_made_are_refused_clearly(
    world: World, asker: str, to: str, question: str, status: int, message: str
) -> None:
    case_id, _ = world.new_case()
    response = world.people[asker].post(f"/cases/{case_id}/opinions", to=to, question=question)
    assert (response.status_code, response.text) == (status, message + "\n")
    assert world.audit(case_id) == []


def test_every_form_needs_the_sessions_csrf_token(world: World) -> None:
    case_id, _ = world.new_case()
    north, south = world.people["north.path"], world.people["south.path"]
    fields = {"to": "south.path", "question": "Q?"}
    for csrf in ("", "forged"):
        forged = north.client.post(f"/cases/{case_id}/opinions", data={"csrf": csrf, **fields})
        assert (forged.status_code, forged.text) == (
            403,
            "The form expired. Reload the page and try again.\n",
        )
    # API tokens carry no CSRF token: forms are for browsers.
    with httpx.Client(base_url=world.server.url, headers={"Authorization": f"Bearer {north.token}"}) as api:
        assert api.post(f"/cases/{case_id}/opinions", data=fields).status_code == 403
    assert world.audit(case_id) == []
    request_id = _ask(world, case_id, "south.path", "Q?")
    for action in ("accept", "decline", "answer", "withdraw"):
        forged = south.client.post(
            f"/opinions/{request_id}/{action}", data={"csrf": "forged", "opinion": "x"}
        )
        assert forged.status_code == 403
    [listed] = _opinions_for(south, {case_id})
    assert listed["state"] == "requested"
