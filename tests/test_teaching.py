"""Teaching sessions against a real server: joining, confinement of guests, anonymised serving,
the read-only room and the pen, and the quiz's private answers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets
from pycrdt import Map

from tests.conftest import (
    Person,
    Server,
    add_slides,
    add_user,
    collab,
    connect_db,
    seed_case,
    sign_in_with_form,
    start_server,
    stop_server,
    write_fake_svs,
)
from tests.yclient import YClient

ACCESSION = "S26-7777"
PATIENT = {"name": "Margaret Ellis", "nhs": "943 476 5919", "dob": "1958-03-14"}
SPECIMEN = "Left breast, core biopsy"


@dataclass
class Student:
    """A guest who joined through the form: their own cookies, and every response they got."""

    name: str
    client: httpx.Client
    participant: int = 0
    csrf: str = ""
    seen: list[str] = field(default_factory=list)

    def get(self, path: str) -> httpx.Response:
        response = self.client.get(path)
        self.seen.append(str(response.headers) + response.text)
        return response

    def post(self, path: str, body: object) -> httpx.Response:
        response = self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})
        self.seen.append(str(response.headers) + response.text)
        return response

    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())}


@dataclass
class Classroom:
    server: Server
    educator: Person
    session_id: str
    code: str
    case_id: str
    slide_id: str
    slide_path: str
    clients: list[httpx.Client] = field(default_factory=list)

    def ws(self) -> str:
        return self.server.url.replace("http://", "ws://") + f"/ws/teaching/{self.session_id}"

    def forbidden(self) -> list[str]:
        """What must never reach a student."""
        return [ACCESSION, *PATIENT.values(), SPECIMEN, self.case_id, self.slide_id, self.slide_path]


def join(room: Classroom, name: str, code: str | None = None) -> Student:
    """A guest joins ``room`` through the form (by the link, the code typed in lower case)."""
    code = code or room.code
    client = httpx.Client(base_url=room.server.url, timeout=30)
    room.clients.append(client)
    student = Student(name, client)
    form = student.get(f"/join/{code}")
    assert form.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    joined = client.post("/join", data={"code": code.lower(), "name": f"  {name} ", "csrf": csrf[1]})
    assert joined.status_code == 303, joined.text
    state = student.get(joined.headers["location"] + "/state.json").json()
    student.participant = -state["user"]["id"]
    student.csrf = state["csrf"]
    assert state["user"]["name"] == name
    return student


@pytest.fixture
def classroom(data_dir: Path) -> Iterator[Classroom]:
    """North's pathologist runs a session of one identified case (with a labelled slide and an
    annotation); nobody has joined yet."""
    seed_case(data_dir)
    result = collab(
        "cases", "add", ACCESSION, "--org", "North Trust",
        "--patient-name", PATIENT["name"], "--nhs-number", PATIENT["nhs"],
        "--date-of-birth", PATIENT["dob"], "--specimen", SPECIMEN,
        data_dir=data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    case_id = result.stdout.strip()
    slide_path = write_fake_svs(data_dir.parent / f"{ACCESSION}-A1.svs")
    (slide_id,) = add_slides(data_dir, slide_path, accession=ACCESSION)
    server = start_server(data_dir)
    try:
        educator = sign_in_with_form(server, "north.path", with_token=True)

        async def annotate() -> None:
            url = server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"
            client = await YClient(url, educator.token).connect()
            await client.wait_for(client.synced.is_set)
            with connect_db(data_dir) as db:
                (user_id,) = db.execute("SELECT id FROM users WHERE username = 'north.path'").fetchone()
            client.annotations()["a1"] = Map(
                {"slide": slide_id, "kind": "rect", "points": [[10.0, 10.0], [200.0, 150.0]],
                 "label": "tumour", "color": "#e6194b", "author": str(user_id),
                 "authorName": "Dr North", "created": "2026-11-29T10:00:00Z",
                 "updated": "2026-11-29T10:00:00Z"}
            )  # fmt: skip
            await asyncio.sleep(0)  # the update is sent by a task
            await client.close()

        asyncio.run(annotate())
        made = educator.post("/teaching", title="Breast pathology for year 3", case=case_id)
        assert made.status_code == 303, made.text
        session_id = made.headers["location"].rsplit("/", 1)[1]
        with connect_db(data_dir) as db:
            (code,) = db.execute("SELECT code FROM teaching_sessions WHERE id = ?", (session_id,)).fetchone()
        room = Classroom(server, educator, session_id, code, case_id, slide_id, str(slide_path.resolve()))
        room.clients.append(educator.client)
        yield room
        for client in room.clients:
            client.close()
    finally:
        stop_server(server)


def _educator_json(room: Classroom, path: str, body: object) -> httpx.Response:
    state = room.educator.get(f"/teach/{room.session_id}/state.json").json()
    return room.educator.client.post(
        f"/teach/{room.session_id}{path}", json=body, headers={"X-CSRF-Token": state["csrf"]}
    )


async def _closed(client: YClient) -> None:
    async with asyncio.timeout(15):
        await client.closed.wait()


def test_join_refuses_bad_codes_and_names_and_confines_guests(classroom: Classroom) -> None:
    server = classroom.server
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    classroom.clients.append(anonymous)
    form = anonymous.get("/join")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    wrong = anonymous.post("/join", data={"code": "ZZZZZZ", "name": "Ann", "csrf": csrf[1]})
    assert wrong.status_code == 404
    assert "No open teaching session has that code" in wrong.text
    nameless = anonymous.post("/join", data={"code": classroom.code, "name": " \t", "csrf": csrf[1]})
    assert nameless.status_code == 400
    assert "Enter the name" in nameless.text
    forged = anonymous.post("/join", data={"code": classroom.code, "name": "Ann", "csrf": "x"})
    assert forged.status_code == 403
    # A name is text, never markup.
    student = join(classroom, "<b>Ann</b>")
    page = student.get(f"/teach/{classroom.session_id}")
    assert "&lt;b&gt;Ann&lt;/b&gt;" in page.text and "<b>Ann</b>" not in page.text

    # The participant cookie opens this session and nothing else.
    client = student.client
    assert client.get(f"/cases/{classroom.case_id}").status_code == 303  # to the sign-in page
    assert client.get(f"/api/cases/{classroom.case_id}").status_code == 401
    assert client.get("/api/worklist").status_code == 401
    assert client.get(f"/slides/{classroom.slide_id}.dzi").status_code == 401
    assert client.get("/teaching").status_code == 303
    assert client.get("/teach/0123456789abcdef").status_code == 404
    assert (
        student.post(f"/teach/{classroom.session_id}/quiz", {"question": "?", "slide": "x"}).status_code
        == 403
    )
    assert student.post(f"/teach/{classroom.session_id}/pen", {"participant": None}).status_code == 403
    assert client.get(f"/teach/{classroom.session_id}/quiz").status_code == 403
    # Nor does a stranger get in.
    assert anonymous.get(f"/teach/{classroom.session_id}/state.json").status_code == 404

    async def sockets() -> None:
        # Refused before the websocket opens (HTTP 403), so no byte of any document is sent.
        url = server.url.replace("http://", "ws://")
        for target, headers in (
            (f"{url}/ws/cases/{classroom.case_id}", student.cookie_header()),
            (classroom.ws(), {"Cookie": "collab_teach=forged.value"}),
        ):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await YClient(target, "", headers=headers).connect()
            assert refused.value.response.status_code == 403

    asyncio.run(sockets())


def test_no_identifier_in_anything_a_student_receives(classroom: Classroom) -> None:
    student = join(classroom, "Ann")
    base = f"/teach/{classroom.session_id}"
    state = student.get(f"{base}/state.json").json()
    assert [item["title"] for item in state["items"]] == ["Case 1"]
    (slide,) = state["slides"]
    assert slide["id"] != classroom.slide_id
    assert student.get(base).status_code == 200
    assert student.get(slide["dzi"]).status_code == 200
    assert student.get(slide["info"]).json()["mpp_x"] == 0.5
    tile = student.client.get(f"{base}/slides/{slide['id']}_files/10/0_0.jpeg")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
    student.seen.append(str(tile.headers))
    again = student.client.get(tile.request.url, headers={"If-None-Match": tile.headers["etag"]})
    assert again.status_code == 304
    for name in ("label", "macro"):
        assert student.get(f"{base}/slides/{slide['id']}/associated/{name}.jpeg").status_code == 404
    assert student.get(f"{base}/slides/{classroom.slide_id}.dzi").status_code == 404

    async def live() -> None:
        client = await YClient(classroom.ws(), "", headers=student.cookie_header()).connect()
        await client.wait_for(client.synced.is_set)
        await client.wait_for(lambda: len(client.annotations()) == 1)
        (copy,) = client.annotations().to_py().values()
        assert copy["slide"] == slide["id"] and copy["label"] == "tumour" and copy["kind"] == "rect"
        student.seen += [frame.decode("latin-1") for frame in client.frames]
        await client.close()

    asyncio.run(live())
    for text in student.seen:
        for secret in classroom.forbidden():
            assert secret not in text


def test_students_are_read_only_even_with_crafted_messages(classroom: Classroom) -> None:
    ann = join(classroom, "Ann")

    async def scenario() -> None:
        educator = await YClient(classroom.ws(), classroom.educator.token).connect()
        await educator.wait_for(educator.synced.is_set)
        before = educator.doc.get_update()
        student = await YClient(classroom.ws(), "", headers=ann.cookie_header()).connect()
        await student.wait_for(student.synced.is_set)
        # A hand-made update that adds an annotation in the student's own name.
        student.annotations()["forged"] = Map(
            {"slide": "x", "kind": "point", "points": [[1.0, 1.0]], "author": str(-ann.participant)}
        )
        await _closed(student)
        assert student.close_code == 4403
        # Nobody else saw it, and a newcomer's copy does not have it.
        late = await YClient(classroom.ws(), classroom.educator.token).connect()
        await late.wait_for(late.synced.is_set)
        assert "forged" not in late.annotations().to_py()
        assert "forged" not in educator.annotations().to_py()
        assert educator.doc.get_update() == before
        # The server's own roots are closed even to the educator.
        educator.doc.get("quiz", type=Map)["state"] = "revealed"
        await _closed(educator)
        assert educator.close_code == 4403
        await late.close()

    asyncio.run(scenario())


def test_the_pen_lets_one_student_draw_as_themselves(classroom: Classroom) -> None:
    ann = join(classroom, "Ann")
    bob = join(classroom, "Bob")

    async def scenario() -> None:
        a = await YClient(classroom.ws(), "", headers=ann.cookie_header()).connect()
        b = await YClient(classroom.ws(), "", headers=bob.cookie_header()).connect()
        await a.wait_for(a.synced.is_set)
        await b.wait_for(b.synced.is_set)
        given = await asyncio.to_thread(_educator_json, classroom, "/pen", {"participant": ann.participant})
        assert given.status_code == 200, given.text
        await a.wait_for(lambda: a.doc.get("session", type=Map).get("penName") == "Ann")
        a.annotations()["by-ann"] = Map(
            {"slide": "s", "kind": "point", "points": [[5.0, 5.0]], "author": str(-ann.participant)}
        )
        await b.wait_for(lambda: "by-ann" in b.annotations().to_py())
        # Bob has no pen.
        b.annotations()["by-bob"] = Map(
            {"slide": "s", "kind": "point", "points": [[6.0, 6.0]], "author": str(-bob.participant)}
        )
        await _closed(b)
        assert b.close_code == 4403
        # Ann may not change what the educator drew.
        await asyncio.to_thread(_educator_json, classroom, "/pen", {"participant": None})
        await a.wait_for(lambda: a.doc.get("session", type=Map).get("pen") is None)
        a.annotations()["late"] = Map({"slide": "s", "kind": "point", "author": str(-ann.participant)})
        await _closed(a)
        assert a.close_code == 4403

    asyncio.run(scenario())
    missing = _educator_json(classroom, "/pen", {"participant": 999_999})
    assert missing.status_code == 404


def test_quiz_answers_stay_private_until_the_reveal(classroom: Classroom) -> None:
    ann = join(classroom, "Ann")
    bob = join(classroom, "Bob")
    base = f"/teach/{classroom.session_id}"
    (slide,) = ann.get(f"{base}/state.json").json()["slides"]
    assert ann.post(f"{base}/quiz/answer", {"question": 1, "x": 5, "y": 5}).status_code == 409
    asked = _educator_json(classroom, "/quiz", {"question": "Click the mitotic figure", "slide": slide["id"]})
    assert asked.status_code == 200, asked.text
    question = asked.json()["id"]

    async def scenario() -> None:
        b = await YClient(classroom.ws(), "", headers=bob.cookie_header()).connect()
        await b.wait_for(lambda: b.doc.get("quiz", type=Map).get("question") == "Click the mitotic figure")
        first = await asyncio.to_thread(
            ann.post, f"{base}/quiz/answer", {"question": question, "x": 100, "y": 80}
        )
        assert first.status_code == 200
        again = await asyncio.to_thread(
            ann.post, f"{base}/quiz/answer", {"question": question, "x": 120, "y": 90}
        )
        assert again.status_code == 200
        mine = await asyncio.to_thread(
            bob.post, f"{base}/quiz/answer", {"question": question, "x": 300.5, "y": 40}
        )
        assert mine.status_code == 200
        status = await asyncio.to_thread(classroom.educator.get, f"{base}/quiz")
        assert status.json()["answers"] == 2
        # Bob's copy holds no answer before the reveal, and no frame carried Ann's point.
        assert "answers" not in b.doc.get("quiz", type=Map).to_py()
        revealed = await asyncio.to_thread(_educator_json, classroom, "/quiz/reveal", {})
        assert revealed.json() == {"revealed": 2}
        await b.wait_for(lambda: b.doc.get("quiz", type=Map).get("state") == "revealed")
        answers = b.doc.get("quiz", type=Map).to_py()["answers"]
        assert sorted((a["x"], a["y"]) for a in answers) == [(120, 90), (300.5, 40)]
        assert all("name" not in a for a in answers)
        await b.close()

    asyncio.run(scenario())
    late = ann.post(f"{base}/quiz/answer", {"question": question, "x": 1, "y": 1})
    assert late.status_code == 409
    assert "revealed" in late.json()["error"]
    refused = bob.client.post(f"{base}/quiz/answer", json={"question": question, "x": 1, "y": 1})
    assert refused.status_code == 403  # no CSRF token
    asked = _educator_json(classroom, "/quiz", {"question": "And the margin?", "slide": slide["id"]})
    outside = ann.post(f"{base}/quiz/answer", {"question": asked.json()["id"], "x": 5000, "y": 1})
    assert outside.status_code == 400
    named = _educator_json(classroom, "/quiz/reveal", {"names": True})
    assert named.json() == {"revealed": 0}
    with connect_db(classroom.server.data_dir) as db:
        events = [r[0] for r in db.execute("SELECT event FROM audit WHERE event LIKE 'teaching%'")]
    assert events.count("teaching session joined") == 2
    assert events.count("teaching quiz revealed") == 2
    assert "teaching session created" in events


def test_cli_creates_a_session_and_refuses_what_the_rules_refuse(data_dir: Path) -> None:
    seed_case(data_dir)
    add_user(data_dir, "north.onc", "clinician", "North Trust")
    slide = write_fake_svs(data_dir.parent / "a.svs")
    add_slides(data_dir, slide)
    made = collab(
        "teaching", "add", "Year 3", "--educator", "north.path", "--case", "S26-1", data_dir=data_dir
    )
    assert made.returncode == 0, made.stderr
    code, link, _ = made.stdout.strip().split("\t")
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{6}", code)
    assert link == f"http://127.0.0.1:8000/join/{code}"
    clinician = collab(
        "teaching", "add", "X", "--educator", "north.onc", "--case", "S26-1", data_dir=data_dir
    )
    assert clinician.returncode == 1
    assert "Only pathologists and administrators" in clinician.stderr
    unknown = collab("teaching", "add", "X", "--educator", "north.path", "--case", "S99", data_dir=data_dir)
    assert "no case with accession 'S99'" in unknown.stderr


def test_a_guests_json_posts_are_bounded_before_they_are_read(classroom: Classroom) -> None:
    """A guest's quiz answer of megabytes is refused from its length (or as it streams), not
    read into memory; a normal answer still goes through the same door."""
    ann = join(classroom, "Ann")
    answer = f"{ann.client.base_url}/teach/{classroom.session_id}/quiz/answer"
    headers = {"X-CSRF-Token": ann.csrf, "Content-Type": "application/json"}
    padding = " " * (4 << 20)
    big = ann.client.post(answer, content=f'{{"question": 1, "x": 5, "y": 5}}{padding}', headers=headers)
    assert big.status_code == 413, big.text
    assert "too large" in big.json()["error"]

    def streamed() -> Iterator[bytes]:
        yield b'{"question": 1, "x": 5, "y": 5}'
        for _ in range(64):
            yield b" " * 4096

    chunked = ann.client.post(answer, content=streamed(), headers=headers)
    assert chunked.status_code == 413, chunked.text
    # No question is open: the ordinary refusal, so small bodies are read as before.
    assert (
        ann.post(f"/teach/{classroom.session_id}/quiz/answer", {"question": 1, "x": 5, "y": 5}).status_code
        == 409
    )
