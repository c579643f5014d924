"""Rights end where their basis ends: sign-out, session expiry, a revoked share, a downgrade made
by the command line in another process, an ended teaching session, an old guest cookie, an
educator who lost the case. Open websockets and event streams are closed (or downgraded) at
once, and nothing sent after that is applied. And the live connections a person may hold are
capped, and opening a case's document is audited."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets

from collab.web.live import MAX_SOCKETS_PER_PERSON, MAX_STREAMS_PER_PERSON
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
from tests.netproxy import FlakyProxy
from tests.yclient import YClient, point_annotation

PEOPLE = {
    "north.path": ("pathologist", "North Trust"),
    "north.out": ("pathologist", "North Trust"),
    "north.many": ("pathologist", "North Trust"),
    "south.expiry": ("pathologist", "South Trust"),
    "south.deleted": ("pathologist", "South Trust"),
    "south.revoked": ("pathologist", "South Trust"),
    "south.down": ("pathologist", "South Trust"),
    "south.teach": ("pathologist", "South Trust"),
}
# How long a test waits for a change to reach an open connection. The design goal is one second
# (the watcher looks every half second); each test prints what it measured.
CLOSE_TIMEOUT_S = 3.0


@dataclass
class World:
    server: Server
    north: Person
    slides_dir: Path
    made: int = 0

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def db(self) -> Any:
        return connect_db(self.data_dir)

    def user_id(self, username: str) -> int:
        with self.db() as db:
            (user_id,) = db.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
        return int(user_id)

    def new_case(self) -> tuple[str, str]:
        """A new case of North Trust with one slide: (accession, case id)."""
        self.made += 1
        accession = f"S26-{self.made:03d}"
        result = collab("cases", "add", accession, "--org", "North Trust", data_dir=self.data_dir)
        assert result.returncode == 0, result.stderr
        slide = write_pyramid_tiff(self.slides_dir / f"{accession}.tiff", 600, 500, seed=self.made)
        add_slides(self.data_dir, slide, accession=accession)
        return accession, result.stdout.strip()

    def ws(self, path: str) -> str:
        return self.server.url.replace("http://", "ws://") + path

    def share(self, case_id: str, username: str, access: str = "contribute") -> int:
        """North shares the case through the web form; returns the share's id."""
        made = self.north.post(f"/cases/{case_id}/shares", **{"with": username, "access": access})
        assert made.status_code == 303, made.text
        shares = self.north.get(f"/api/cases/{case_id}").json()["shares"]
        return int(next(s["id"] for s in shares if s["user"] == username))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("data")
    for org in ("North Trust", "South Trust"):
        assert collab("orgs", "add", org, data_dir=data_dir).returncode == 0
    for username, (role, org) in PEOPLE.items():
        add_user(data_dir, username, role, org)
    server = start_server(data_dir)
    north = sign_in_with_form(server, "north.path", with_token=True)
    yield World(server, north, tmp_path_factory.mktemp("slides"))
    north.client.close()
    stop_server(server)


def _cookies(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}


async def _connect(url: str, *, token: str = "", headers: dict[str, str] | None = None) -> YClient:
    client = await YClient(url, token, headers=headers).connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    return client


async def _closed_after(client: YClient, since: float) -> float:
    """Seconds from ``since`` until the server closed ``client`` (fails after CLOSE_TIMEOUT_S)."""
    await asyncio.wait_for(client.closed.wait(), CLOSE_TIMEOUT_S)
    return time.monotonic() - since


async def _has_annotation(world: World, case_id: str, key: str) -> bool:
    """Whether the case's document holds ``key``, as a fresh observer (North) receives it."""
    observer = await _connect(world.ws(f"/ws/cases/{case_id}"), token=world.north.token)
    try:
        return key in observer.annotations()
    finally:
        await observer.close()


async def _refused(url: str, headers: dict[str, str]) -> int:
    """The HTTP status a websocket handshake is refused with."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers=headers):
            pass
    return refused.value.response.status_code


async def _update_after(client: YClient, author: int, key: str) -> None:
    """A change sent right after the change of rights (the update goes out from a task)."""
    client.annotations()[key] = point_annotation(author, key)
    await asyncio.sleep(0)


def test_signing_out_closes_that_sessions_websockets_and_streams(world: World) -> None:
    accession, case_id = world.new_case()
    meeting = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2026-12-01T13:00",
        "--chair", "north.path", "--coordinator", "north.path", "--attendee", "north.out",
        "--case", accession, data_dir=world.data_dir,
    )  # fmt: skip
    assert meeting.returncode == 0, meeting.stderr
    person = sign_in_with_form(world.server, "north.out")
    author = world.user_id("north.out")

    async def scenario() -> None:
        live = await _connect(world.ws(f"/ws/cases/{case_id}"), headers=_cookies(person.client))
        async with (
            httpx.AsyncClient(base_url=world.server.url, cookies=person.client.cookies, timeout=30) as sse,
            sse.stream("GET", f"/meetings/{meeting.stdout.strip()}/events") as stream,
        ):
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            since = time.monotonic()
            signed_out = await asyncio.to_thread(person.post, "/logout")
            assert signed_out.status_code == 303
            await _update_after(live, author, "after-sign-out")
            delay = await _closed_after(live, since)
            print(f"sign-out: websocket closed {delay:.3f} s after the request")
            assert (live.close_code, live.close_reason) == (4403, "access ended: signed out")

            async def drained() -> None:
                async for _ in lines:
                    pass

            await asyncio.wait_for(drained(), CLOSE_TIMEOUT_S)  # the stream ended too
            print(f"sign-out: event stream ended {time.monotonic() - since:.3f} s after the request")
        assert not await _has_annotation(world, case_id, "after-sign-out")

    asyncio.run(scenario())
    person.client.close()


@pytest.mark.parametrize("how", ["expires", "deleted by another process"])
def test_a_session_that_expires_or_is_deleted_closes_its_websockets(world: World, how: str) -> None:
    username = "south.expiry" if how == "expires" else "south.deleted"
    _, case_id = world.new_case()
    world.share(case_id, username)
    person = sign_in_with_form(world.server, username)
    headers = _cookies(person.client)
    url = world.ws(f"/ws/cases/{case_id}")
    user_id = world.user_id(username)

    async def scenario() -> None:
        if how == "expires":
            # The session ends in a few seconds, as if signed in twelve hours ago (the stored time
            # has whole seconds; the connection opens before it).
            ends = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
            with world.db() as db:
                db.execute("UPDATE sessions SET expires = ? WHERE user_id = ?", (ends.isoformat(), user_id))
            live = await _connect(url, headers=headers)
            wait = (ends - datetime.now(UTC)).total_seconds()
            since = time.monotonic() + wait
            async with asyncio.timeout(wait + CLOSE_TIMEOUT_S):
                await live.closed.wait()
            delay = time.monotonic() - since
        else:
            live = await _connect(url, headers=headers)
            since = time.monotonic()
            with world.db() as db:
                db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            delay = await _closed_after(live, since)
        print(f"session {how}: websocket closed {delay:.3f} s after")
        assert (live.close_code, live.close_reason) == (4403, "access ended: signed out")
        # Remembered identities (for tiles) do not let a new websocket in either.
        assert await _refused(url, headers) == 403

    asyncio.run(scenario())
    person.client.close()


def test_revoking_a_share_in_the_web_form_closes_at_once_and_applies_nothing_after(world: World) -> None:
    _, case_id = world.new_case()
    share_id = world.share(case_id, "south.revoked")
    person = sign_in_with_form(world.server, "south.revoked", with_token=True)
    author = world.user_id("south.revoked")

    async def scenario() -> None:
        path = f"/ws/cases/{case_id}"
        # A second tab far away: its change leaves before the close reaches it, and reaches the
        # server after the server closed the link (0.3 s each way).
        async with FlakyProxy(urlsplit(world.server.url).port or 0, one_way_s=0.3, loss=0.0) as proxy:
            live = await _connect(world.ws(path), token=person.token)
            far = await _connect(f"ws://127.0.0.1:{proxy.port}{path}", token=person.token)
            since = time.monotonic()
            revoked = await asyncio.to_thread(world.north.post, f"/cases/{case_id}/shares/{share_id}/revoke")
            assert revoked.status_code == 303
            await _update_after(far, author, "in-flight")
            delay = await _closed_after(live, since)
            print(f"share revoked: websocket closed {delay:.3f} s after the request")
            assert (live.close_code, live.close_reason) == (4403, "access to this case has ended")
            async with asyncio.timeout(5):
                await far.closed.wait()
            assert far.close_code == 4403
        assert not await _has_annotation(world, case_id, "in-flight")

    asyncio.run(scenario())
    person.client.close()


def test_a_downgrade_by_the_command_line_in_another_process_reaches_open_websockets(world: World) -> None:
    accession, case_id = world.new_case()
    shared = collab("cases", "share", accession, "--user", "south.down", data_dir=world.data_dir)
    assert shared.returncode == 0, shared.stderr
    person = sign_in_with_form(world.server, "south.down", with_token=True)
    author = world.user_id("south.down")
    url = world.ws(f"/ws/cases/{case_id}")

    async def scenario() -> None:
        live = await _connect(url, token=person.token)
        down = await asyncio.to_thread(
            collab,
            "cases",
            "share",
            accession,
            "--user",
            "south.down",
            "--read-only",
            data_dir=world.data_dir,
        )
        assert down.returncode == 0, down.stderr
        since = time.monotonic()
        delay = await _closed_after(live, since)
        print(f"downgrade by the CLI: websocket closed {delay:.3f} s after the command returned")
        assert live.close_code == 4409, (live.close_code, live.close_reason)
        # Back in, read-only: a change is refused and not applied.
        again = await _connect(url, token=person.token)
        await _update_after(again, author, "after-downgrade")
        await asyncio.wait_for(again.closed.wait(), CLOSE_TIMEOUT_S)
        assert again.close_code == 4403
        assert not await _has_annotation(world, case_id, "after-downgrade")

    asyncio.run(scenario())
    person.client.close()


# -- teaching sessions ------------------------------------------------------------------


@dataclass
class Lesson:
    session_id: str
    code: str
    guest: httpx.Client
    slide: dict[str, str]

    def urls(self) -> dict[str, str]:
        base = f"/teach/{self.session_id}"
        return {
            "state": f"{base}/state.json",
            "dzi": self.slide["dzi"],
            "info": self.slide["info"],
            "tile": f"{base}/slides/{self.slide['id']}_files/0/0_0.jpeg",
        }

    def statuses(self) -> dict[str, int]:
        return {name: self.guest.get(url).status_code for name, url in self.urls().items()}


def _lesson(world: World, educator: Person, case_id: str) -> Lesson:
    """``educator`` makes a session of the case; a guest joins it."""
    made = educator.post("/teaching", title="Margins", case=case_id)
    assert made.status_code == 303, made.text
    session_id = made.headers["location"].rsplit("/", 1)[1]
    with world.db() as db:
        (code,) = db.execute("SELECT code FROM teaching_sessions WHERE id = ?", (session_id,)).fetchone()
    guest = httpx.Client(base_url=world.server.url, timeout=30)
    form = guest.get(f"/join/{code}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    joined = guest.post("/join", data={"code": code, "name": "Sam", "csrf": csrf[1]})
    assert joined.status_code == 303, joined.text
    state = guest.get(f"/teach/{session_id}/state.json").json()
    return Lesson(session_id, code, guest, state["slides"][0])


SERVED = {"state": 200, "dzi": 200, "info": 200, "tile": 200}
GONE = {"state": 410, "dzi": 410, "info": 410, "tile": 410}


def test_an_ended_teaching_session_answers_410_everywhere(world: World) -> None:
    _, case_id = world.new_case()
    lesson = _lesson(world, world.north, case_id)
    assert lesson.statuses() == SERVED
    closed = world.north.post(f"/teach/{lesson.session_id}/close")
    assert closed.status_code == 303
    assert lesson.statuses() == GONE
    assert lesson.guest.get(lesson.urls()["state"]).json()["detail"] == "This teaching session has ended."
    url = world.ws(f"/ws/teaching/{lesson.session_id}")
    assert asyncio.run(_refused(url, _cookies(lesson.guest))) == 410
    lesson.guest.close()


def test_a_guest_cookie_older_than_twelve_hours_is_refused(world: World) -> None:
    _, case_id = world.new_case()
    lesson = _lesson(world, world.north, case_id)
    url = world.ws(f"/ws/teaching/{lesson.session_id}")

    async def scenario() -> None:
        live = await _connect(url, headers=_cookies(lesson.guest))
        since = time.monotonic()
        joined = (datetime.now(UTC) - timedelta(hours=12, minutes=1)).isoformat(timespec="seconds")
        with world.db() as db:
            db.execute(
                "UPDATE teaching_participants SET joined = ? WHERE session_id = ?",
                (joined, lesson.session_id),
            )
        delay = await _closed_after(live, since)
        print(f"guest past 12 h: websocket closed {delay:.3f} s after")
        assert (live.close_code, live.close_reason) == (4403, "access ended: signed out")
        assert await _refused(url, _cookies(lesson.guest)) == 403

    asyncio.run(scenario())
    # A stranger now: the same answer as for anyone else.
    assert lesson.statuses() == {"state": 404, "dzi": 404, "info": 404, "tile": 404}
    lesson.guest.close()


def test_a_session_of_a_shared_case_ends_when_the_educators_share_ends(world: World) -> None:
    _, case_id = world.new_case()
    share_id = world.share(case_id, "south.teach", "read")
    educator = sign_in_with_form(world.server, "south.teach")
    lesson = _lesson(world, educator, case_id)
    assert lesson.statuses() == SERVED
    url = world.ws(f"/ws/teaching/{lesson.session_id}")

    async def scenario() -> None:
        live = await _connect(url, headers=_cookies(lesson.guest))
        since = time.monotonic()
        revoked = await asyncio.to_thread(world.north.post, f"/cases/{case_id}/shares/{share_id}/revoke")
        assert revoked.status_code == 303
        delay = await _closed_after(live, since)
        print(f"educator's share ended: guest's websocket closed {delay:.3f} s after the request")
        assert live.close_code == 4410

    asyncio.run(scenario())
    assert lesson.statuses() == GONE
    educator.client.close()
    lesson.guest.close()


# -- caps and audit ---------------------------------------------------------------------


def test_live_connections_per_person_are_capped(world: World) -> None:
    accession, case_id = world.new_case()
    meeting = collab(
        "meetings", "add", "Capped MDT", "--org", "North Trust", "--starts", "2026-12-02T13:00",
        "--chair", "north.many", "--coordinator", "north.many", "--case", accession,
        data_dir=world.data_dir,
    )  # fmt: skip
    assert meeting.returncode == 0, meeting.stderr
    person = sign_in_with_form(world.server, "north.many", with_token=True)
    bearer = {"Authorization": f"Bearer {person.token}"}
    lesson = _lesson(world, world.north, case_id)

    async def scenario() -> None:
        url = world.ws(f"/ws/cases/{case_id}")
        sockets = [await _connect(url, token=person.token) for _ in range(MAX_SOCKETS_PER_PERSON)]
        assert await _refused(url, bearer) == 429
        # A guest's cookie counts on its own.
        teaching = world.ws(f"/ws/teaching/{lesson.session_id}")
        guest = _cookies(lesson.guest)
        pupils = [await _connect(teaching, headers=guest) for _ in range(MAX_SOCKETS_PER_PERSON)]
        assert await _refused(teaching, guest) == 429
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=world.server.url, headers=bearer, timeout=30)
            )
            events = f"/meetings/{meeting.stdout.strip()}/events"
            for _ in range(MAX_STREAMS_PER_PERSON):
                stream = await stack.enter_async_context(client.stream("GET", events))
                assert stream.status_code == 200
            over = await client.get(events)
            assert over.status_code == 429
            assert "Too many" in over.text
        for client in (*sockets, *pupils):
            assert not client.closed.is_set()
            await client.close()

    asyncio.run(scenario())
    person.client.close()
    lesson.guest.close()


def test_opening_a_cases_document_is_audited_once_per_connection(world: World) -> None:
    _, case_id = world.new_case()

    async def scenario() -> None:
        for _ in range(2):
            live = await _connect(world.ws(f"/ws/cases/{case_id}"), token=world.north.token)
            await live.close()

    asyncio.run(scenario())
    with world.db() as db:
        rows = db.execute(
            "SELECT username, case_id FROM audit WHERE event = 'document opened' AND case_id = ?", (case_id,)
        ).fetchall()
    assert rows == [("north.path", case_id), ("north.path", case_id)]
