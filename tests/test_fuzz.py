"""Hostile input, fuzzed: websocket frames, tile and API addresses, form fields and damaged slide files.

Hypothesis runs with a fixed seed (``derandomize``), a bounded number of examples, no deadline
and no example database, so a run is repeatable and writes nothing into the repository.
Each test keeps one real server for all its examples. What must hold every time: a clear
answer (a close code of docs/sync.md, or a short 4xx), only the offending connection closed,
everyone else still served, nothing stored, no traceback in the server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import urllib.parse
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, YMessageType, YSyncMessageType, write_var_uint

from collab.sync.protocol import parse
from tests.conftest import (
    Server,
    add_user,
    api_token,
    collab,
    connect_db,
    room_people,
    seed_case,
    start_server,
    stop_server,
)
from tests.yclient import YClient, point_annotation

T = TypeVar("T")


def fuzz(examples: int) -> settings:
    """Seeded, bounded, no deadline (a real server answers), no database in the repository."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Close codes a hostile frame may earn (docs/sync.md); 1011 (server error) is not among them.
CLEAR_CLOSES = {1003, 1007, 1009, 4400, 4403, 4429}
MAX_SAFE_INTEGER = 2**53 - 1


def _no_traceback(data_dir: Path) -> None:
    log = (data_dir / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


def _strict_json(text: str) -> Any:
    """JSON as a browser's JSON.parse reads it (no NaN or Infinity)."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _read_uint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _browser_would_read(frame: bytes) -> None:
    """What the server relays must be readable by lib0/y-protocols in a browser: numbers up to
    2**53-1 and awareness states that are JSON objects (or null, for gone)."""
    parsed = parse(frame)
    if parsed.kind != YMessageType.AWARENESS:
        return
    data, pos = parsed.payload, 0
    count, pos = _read_uint(data, pos)
    for _ in range(count):
        client, pos = _read_uint(data, pos)
        clock, pos = _read_uint(data, pos)
        length, pos = _read_uint(data, pos)
        state = _strict_json(data[pos : pos + length].decode())
        pos += length
        assert client <= MAX_SAFE_INTEGER and clock <= MAX_SAFE_INTEGER, (client, clock)
        assert state is None or isinstance(state, dict), state


# ---------------------------------------------------------------------------------------------
# Websocket frames


@dataclass
class Room:
    server: Server
    case_id: str
    url: str
    tokens: dict[str, str]
    ids: dict[str, int]
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    data_dir = tmp_path_factory.mktemp("fuzz-ws")
    seed_case(data_dir)
    case_id, tokens, ids = room_people(data_dir)
    # A read-scoped token reads the room and writes nothing, not even to the discussion.
    made = collab("users", "token", "north.onc", "--scope", "read", data_dir=data_dir)
    assert made.returncode == 0, made.stderr
    tokens["north.onc:read"] = made.stdout.strip()
    server = start_server(data_dir)
    loop = asyncio.new_event_loop()
    try:
        yield Room(
            server,
            case_id,
            server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}",
            tokens,
            ids,
            loop,
        )
    finally:
        loop.close()
        stop_server(server)
    _no_traceback(data_dir)


def _sync_frame(kind: int, payload: bytes) -> bytes:
    return bytes([YMessageType.SYNC, kind]) + write_var_uint(len(payload)) + payload


def _awareness_frame(body: bytes) -> bytes:
    return bytes([YMessageType.AWARENESS]) + write_var_uint(len(body)) + body


QUERY_AWARENESS = b"\x03"


async def _round_trip(client: YClient) -> bool:
    """Ask for the awareness states and wait for the answer: everything the server sent this
    client before it handled our query has then been read. False if the connection closed."""
    before = len(client.frames)
    await client.send_raw(QUERY_AWARENESS)
    await client.wait_for(lambda: client.closed.is_set() or len(client.frames) > before, timeout=15)
    return not client.closed.is_set()


def _state(doc: Doc[Any]) -> dict[str, Any]:
    """A document's content, root by root."""
    roots = {"annotations": Map, "discussion": None, "outcome": Map, "meta": Map}
    out = {}
    for name in sorted(doc.keys()):
        kind = roots.get(name)
        out[name] = (
            doc.get(name, type=kind).to_py() if kind else str(doc.get(name, type=_array_type()).to_py())
        )
    return out


def _array_type() -> type:
    from pycrdt import Array

    return Array


def _base_update(author: int) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("annotations", type=Map)["seed"] = point_annotation(author, "seed")
    return doc.get_update()


# Frames: anything at all, and near-misses of each message the protocol has.
_varuint_prefix = st.binary(min_size=1, max_size=8).map(lambda b: bytes(x | 0x80 for x in b))  # never ends

_frames = st.one_of(
    st.binary(max_size=64),
    st.just(b""),
    _varuint_prefix,  # a truncated number as the whole frame
    st.tuples(st.sampled_from([0, 1]), _varuint_prefix).map(lambda t: bytes([t[0]]) + t[1]),
    # declared length beyond the end of the frame
    st.tuples(st.sampled_from([0, 1, 2]), st.integers(1, 2**40), st.binary(max_size=16)).map(
        lambda t: (bytes([0, t[0]]) if t[0] <= 2 else b"") + write_var_uint(t[1] + len(t[2])) + t[2]
    ),
    st.tuples(st.integers(1, 2**40), st.binary(max_size=16)).map(
        lambda t: b"\x01" + write_var_uint(t[0] + len(t[1])) + t[1]
    ),
    # unknown message or sync types, trailing bytes
    st.tuples(st.integers(4, 2**20), st.binary(max_size=8)).map(lambda t: write_var_uint(t[0]) + t[1]),
    st.tuples(st.integers(3, 300), st.binary(max_size=8)).map(
        lambda t: b"\x00" + write_var_uint(t[0]) + write_var_uint(len(t[1])) + t[1]
    ),
    st.binary(min_size=1, max_size=8).map(lambda b: _sync_frame(YSyncMessageType.SYNC_STEP1, b"\x00") + b),
    # a sync step 1 whose state vector is garbage
    st.binary(max_size=32).map(lambda b: _sync_frame(YSyncMessageType.SYNC_STEP1, b)),
)


def _mutated_updates(base: bytes) -> st.SearchStrategy[bytes]:
    """Malformed Yjs updates: random bytes, truncations and bit flips of a real one."""
    cut = st.integers(0, len(base) - 1).map(lambda n: base[:n])
    flips = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 7)), min_size=1, max_size=4)

    def flip(positions: list[tuple[int, int]]) -> bytes:
        data = bytearray(base)
        for pos, bit in positions:
            data[pos] ^= 1 << bit
        return bytes(data)

    return st.one_of(st.binary(min_size=1, max_size=64), cut, flips.map(flip))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _awareness_text() -> st.SearchStrategy[str]:
    return st.one_of(
        _json_values.map(lambda v: json.dumps(v)),  # includes NaN and Infinity, which is not JSON
        st.text(max_size=30),  # mostly not JSON
        st.sampled_from(["", "{", "nul", "[1,", '{"user":', "\ud800", "NaN", "-Infinity"]),
        st.integers(1, 3).map(lambda k: json.dumps({"pad": "x" * (64 * 1024 * k)})),  # too big
        st.integers(1, 30000).map(lambda n: '{"a":' + "[" * n + "]" * n + "}"),  # deep
    )


_awareness_bodies = st.one_of(
    # entries with absurd ids and clocks and any text
    st.lists(
        st.tuples(st.integers(0, 2**60), st.integers(0, 2**60), _awareness_text()), min_size=0, max_size=4
    ).map(
        lambda entries: (
            write_var_uint(len(entries))
            + b"".join(
                write_var_uint(c)
                + write_var_uint(k)
                + write_var_uint(len(t.encode(errors="surrogatepass")))
                + t.encode(errors="surrogatepass")
                for c, k, t in entries
            )
        )
    ),
    # counts that do not match the entries
    st.tuples(st.integers(0, 2**40), st.binary(max_size=24)).map(lambda t: write_var_uint(t[0]) + t[1]),
    st.binary(max_size=32),
)


def test_hostile_websocket_frames_close_only_their_sender_and_change_nothing(room: Room) -> None:
    path_id, trainee_id = room.ids["north.path"], room.ids["north.trainee"]
    seeded = _base_update(path_id)

    async def setup() -> YClient:
        observer = await YClient(room.url, room.tokens["north.path"]).connect()
        await observer.synced.wait()
        observer.annotations()["seed"] = point_annotation(path_id, "seed")
        await observer.set_awareness({"user": {"id": path_id, "name": "Dr North"}})
        assert await _round_trip(observer)
        return observer

    observer = room.run(setup())
    settled = _state(observer.doc)
    outcomes: dict[Any, int] = {}

    async def hostile(frame: bytes, *, token: str) -> None:
        before = _state(observer.doc)
        heard = len(observer.frames)
        bad = await YClient(room.url, token).connect()
        await bad.synced.wait()
        await bad.send_raw(frame)
        alive = await _round_trip(bad)
        if not alive:
            assert bad.close_code in CLEAR_CLOSES, (frame[:80], bad.close_code, bad.close_reason)
            assert bad.close_reason, "a close says why"
        outcomes[bad.close_code if not alive else "open"] = (
            outcomes.get(bad.close_code if not alive else "open", 0) + 1
        )
        await bad.close()
        assert await _round_trip(observer), "the observer was disconnected"
        for data in observer.frames[heard:]:
            _browser_would_read(data)
        if not alive:
            assert _state(observer.doc) == before, frame[:80]
        # Neither the trainee nor the clinician may touch the pathologist's annotation, whatever
        # they send, accepted or not.
        assert _state(observer.doc)["annotations"].get("seed") == settled["annotations"]["seed"], frame

    @fuzz(250)
    @given(frame=_frames)
    def raw_frames(frame: bytes) -> None:
        room.run(hostile(frame, token=room.tokens["north.trainee"]))

    @fuzz(150)
    @given(
        update=_mutated_updates(seeded),
        kind=st.sampled_from([YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE]),
    )
    def yjs_updates(update: bytes, kind: int) -> None:
        room.run(hostile(_sync_frame(kind, update), token=room.tokens["north.trainee"]))

    @fuzz(150)
    @given(body=_awareness_bodies)
    def awareness(body: bytes) -> None:
        room.run(hostile(_awareness_frame(body), token=room.tokens["north.trainee"]))

    @fuzz(25)
    @given(update=_mutated_updates(seeded))
    def read_only(update: bytes) -> None:
        frame = _sync_frame(YSyncMessageType.SYNC_UPDATE, update)
        room.run(hostile(frame, token=room.tokens["north.onc:read"]))

    # The clinician may post to the discussion and nothing else: their hostile updates are
    # read as deeply as a contributor's, and may still not touch an annotation.
    @fuzz(25)
    @given(update=_mutated_updates(seeded))
    def discussing(update: bytes) -> None:
        room.run(hostile(_sync_frame(YSyncMessageType.SYNC_UPDATE, update), token=room.tokens["north.onc"]))

    raw_frames()
    yjs_updates()
    awareness()
    read_only()
    discussing()

    async def finish() -> None:
        # Text frames and frames over the limit, once each.
        for frame, code in (
            ("text frame", 1003),
            (b"\x00\x02" + write_var_uint(2 << 20) + b"x" * (2 << 20), 1009),
        ):
            bad = await YClient(room.url, room.tokens["north.trainee"]).connect()
            await bad.synced.wait()
            with contextlib.suppress(websockets.ConnectionClosed):  # closed while it goes out
                await bad._ws.send(frame)
            async with asyncio.timeout(15):
                await bad.closed.wait()
            assert bad.close_code == code, (code, bad.close_code)
        # The observer is still here and still hears a real change.
        writer = await YClient(room.url, room.tokens["north.trainee"]).connect()
        await writer.synced.wait()
        writer.annotations()["after"] = point_annotation(trainee_id, "after the storm")
        await observer.wait_for(lambda: "after" in observer.annotations())
        await writer.close()
        await observer.close()

    room.run(finish())
    # Whatever was refused changed nothing: only what a valid update could do is in the room
    # (hypothesis also builds valid updates now and then: bit flips of unused bytes).
    expected = _state(observer.doc)
    assert expected["annotations"]["seed"] == settled["annotations"]["seed"]

    async def fresh() -> dict[str, Any]:
        # The room was unloaded when the last one left: this loads it from SQLite.
        await asyncio.sleep(0.5)
        late = await YClient(room.url, room.tokens["north.path"]).connect()
        await late.synced.wait()
        state = _state(late.doc)
        await late.close()
        return state

    assert room.run(fresh()) == expected
    assert {1007, 4400, 4403} <= outcomes.keys(), outcomes  # the fuzz reached each check
    _no_traceback(room.server.data_dir)


# ---------------------------------------------------------------------------------------------
# Addresses and forms


@dataclass
class Site:
    server: Server
    case_id: str
    slide_id: str
    meeting_id: str
    session_id: str
    code: str
    data_dir: Path

    def counts(self) -> dict[str, int]:
        tables = (
            "case_shares",
            "opinion_requests",
            "meeting_outcomes",
            "teaching_participants",
            "sessions",
            "users",
        )
        with connect_db(self.data_dir) as db:
            return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from tests.conftest import write_pyramid_tiff

    data_dir = tmp_path_factory.mktemp("fuzz-http")
    seed_case(data_dir)
    add_user(data_dir, "north.onc", "clinician", "North Trust", "--specialty", "oncology")
    slide = write_pyramid_tiff(data_dir / "pyramid.tiff", 1024, 768, levels=3)
    added = collab("slides", "add", str(slide), "--case", "S26-1", data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    meeting = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2026-12-01T13:00",
        "--chair", "north.path", "--coordinator", "north.path", "--attendee", "north.onc", "--case", "S26-1",
        data_dir=data_dir,
    )  # fmt: skip
    assert meeting.returncode == 0, meeting.stderr
    teaching = collab(
        "teaching", "add", "Year 3", "--educator", "north.path", "--case", "S26-1", data_dir=data_dir
    )
    assert teaching.returncode == 0, teaching.stderr
    code = teaching.stdout.strip().split("\t")[0]
    with connect_db(data_dir) as conn:
        case_id = conn.execute("SELECT id FROM cases").fetchone()[0]
        slide_id = conn.execute("SELECT id FROM slides").fetchone()[0]
        meeting_id = str(conn.execute("SELECT id FROM meetings").fetchone()[0])
        session_id = str(conn.execute("SELECT id FROM teaching_sessions").fetchone()[0])
    server = start_server(data_dir)
    server.client.headers["Authorization"] = f"Bearer {api_token(data_dir, 'north.path')}"
    try:
        yield Site(server, case_id, slide_id, meeting_id, session_id, code, data_dir)
    finally:
        stop_server(server)
    _no_traceback(data_dir)


_segments = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["..", "%2e%2e", "../../etc/passwd", "\x00", "-1", "99999999999999999999", "1e9", "0x10",
                     "NaN", "inf", "", " ", "%", "\u202e", "1/2", "a" * 5000]),
    st.integers(-(2**70), 2**70).map(str),
)  # fmt: skip


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _check_answer(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500 or (
        response.status_code == 503 and "cannot be read" in response.text
    ), (what, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.text.strip(), (what, "an error says what went wrong")


def test_fuzzed_addresses_are_answered_with_a_short_4xx_never_a_5xx(site: Site) -> None:
    client = site.server.client
    s, c, m, t = site.slide_id, site.case_id, site.meeting_id, site.session_id

    @fuzz(400)
    @given(
        template=st.sampled_from(
            [
                "/slides/{a}.dzi",
                "/slides/{s}_files/{a}/{b}_{a}.jpeg",
                "/slides/{s}_files/{a}/{b}",
                "/slides/{s}_files/12/{a}_{b}.{a}",
                "/slides/{a}_files/0/0_0.jpeg",
                "/slides/{s}/thumbnail.jpeg?max={a}",
                "/slides/{s}/associated/{a}.jpeg",
                "/api/slides/{a}",
                "/api/cases/{a}",
                "/api/cases/{c}/annotations.geojson?slide={a}",
                "/api/cases/{a}/timeline",
                "/cases/{a}",
                "/cases/{c}?slide={a}&meeting={b}",
                "/cases/{c}?view={a}",
                "/api/worklist?status={a}&priority={b}&assignee={a}",
                "/meetings/{a}",
                "/meetings/{m}/summary?{a}={b}",
                "/api/meetings/{a}/room",
                "/teach/{a}",
                "/teach/{t}/state.json",
                "/teach/{a}/slides/{b}.dzi",
                "/teach/{t}/slides/{a}_files/{b}/0_0.jpeg",
                "/teach/{t}/quiz",
                "/join/{a}",
                "/login?next={a}",
                "/opinions/{a}/{b}",
            ]
        ),
        a=_segments,
        b=_segments,
    )
    def addresses(template: str, a: str, b: str) -> None:
        path = template.format(a=_q(a), b=_q(b), s=s, c=c, m=m, t=t)
        _check_answer(client.get(path), path)

    addresses()
    assert client.get("/healthz").status_code == 200
    assert client.get(f"/slides/{s}_files/0/0_0.jpeg").status_code == 200


_field = st.one_of(
    st.text(max_size=60),
    st.text(max_size=60).map(lambda t: t + "\x00" + t),
    st.sampled_from(
        ["", " ", "a" * 100_000, "<script>alert(1)</script>", "north.path", "North Trust", "\ud800"]
    ),
)


def _form(draw_fields: dict[str, str | None]) -> dict[str, str]:
    return {
        k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        for k, v in draw_fields.items()
        if v is not None
    }


def test_fuzzed_forms_are_refused_clearly_and_store_nothing(site: Site) -> None:
    from tests.conftest import sign_in_with_form

    person = sign_in_with_form(site.server, "north.path")
    guest = httpx.Client(base_url=site.server.url, timeout=30)
    login_csrf = re.search(r'name="csrf" value="([^"]+)"', guest.get("/login").text)
    join_csrf = re.search(r'name="csrf" value="([^"]+)"', guest.get(f"/join/{site.code}").text)
    assert login_csrf and join_csrf
    forms = {
        "login": ("/login", ("username", "password", "csrf", "next"), guest, login_csrf[1]),
        "share": (f"/cases/{site.case_id}/shares", ("with", "access", "csrf"), person.client, person.csrf),
        "opinion": (
            f"/cases/{site.case_id}/opinions",
            ("to", "question", "urgent", "csrf"),
            person.client,
            person.csrf,
        ),
        "outcome": (
            f"/meetings/{site.meeting_id}/cases/{site.case_id}/outcome",
            ("decision", "notes", "csrf"),
            person.client,
            person.csrf,
        ),
        "join": ("/join", ("code", "name", "csrf"), guest, join_csrf[1]),
    }  # fmt: skip
    before = site.counts()
    seen: dict[tuple[str, int], int] = {}

    @fuzz(300)
    @given(
        which=st.sampled_from(sorted(forms)),
        values=st.lists(st.one_of(st.none(), _field), min_size=4, max_size=4),
        real_csrf=st.booleans(),
        raw=st.one_of(st.none(), st.binary(max_size=200)),
        content_type=st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "multipart/form-data; boundary=x",
                "text/plain",
            ]
        ),
    )
    def posts(
        which: str, values: list[str | None], real_csrf: bool, raw: bytes | None, content_type: str
    ) -> None:
        path, names, client, csrf = forms[which]
        fields = _form(dict(zip(names, values, strict=False)))
        if real_csrf:
            fields["csrf"] = csrf
            if which == "join" and values[0] is None:
                fields["code"] = site.code  # then only the display name is hostile
        if raw is None:
            response = client.post(path, data=fields)
        else:
            response = client.post(path, content=raw, headers={"Content-Type": content_type})
        _check_answer(response, f"{which} {fields!r}"[:300])
        assert response.status_code in (303, 400, 401, 403, 404, 409, 413, 415, 422, 429), (
            which,
            response.status_code,
        )
        seen[(which, response.status_code)] = seen.get((which, response.status_code), 0) + 1
        if response.status_code != 303:
            assert site.counts() == before, (which, fields)
        before.update(site.counts())  # what an accepted form stored is the new baseline

    posts()
    # The fuzz got past the CSRF check of every form.
    assert {which for which, status in seen if status != 403} == set(forms), seen
    assert site.server.client.get("/healthz").status_code == 200
    person.client.close()
    guest.close()


# ---------------------------------------------------------------------------------------------
# Damaged slide files


def _damaged(source: bytes, seed: int) -> Iterator[tuple[str, bytes]]:
    """Truncations at several cut points and seeded bit flips of a slide file."""
    import random

    rng = random.Random(seed)
    for fraction in (0.001, 0.1, 0.6, 0.999):
        yield f"cut{fraction}", source[: int(len(source) * fraction)]
    for number in range(2):
        data = bytearray(source)
        for _ in range(1 + number * 16):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        yield f"flip{number}", bytes(data)
    head = bytearray(source)  # the header and first directory, where a flip hurts most
    for _ in range(6):
        head[rng.randrange(min(len(head), 4096))] ^= 1 << rng.randrange(8)
    yield "fliphead", bytes(head)


def test_damaged_slide_files_are_refused_clearly_or_served_safely(tmp_path: Path) -> None:
    from tests.conftest import SHARED_SLIDES, write_pyramid_tiff

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    seed_case(data_dir)
    good = write_pyramid_tiff(tmp_path / "good.tiff", 512, 512, levels=2)
    sources = [write_pyramid_tiff(tmp_path / "generated.tiff", 700, 500, levels=3, seed=3)]
    # The real slides, small ones whole; never copied into the repository (tmp_path only).
    for name in ("small.svs", "boxes.tiff", "CMU-1-Small-Region.svs", "test3-DAPI-2-387.ndpi"):
        if (SHARED_SLIDES / name).is_file():
            sources.append(SHARED_SLIDES / name)
    damaged = []
    for number, source in enumerate(sources):
        for what, data in _damaged(source.read_bytes(), seed=number):
            path = tmp_path / f"{source.stem}-{what}{source.suffix}"
            path.write_bytes(data)
            damaged.append(path)
    [good_id] = [
        line.split("\t")[0]
        for line in collab(
            "slides", "add", str(good), "--case", "S26-1", data_dir=data_dir
        ).stdout.splitlines()
    ]
    added = []
    with ThreadPoolExecutor(2) as pool:  # each run is mostly Python starting up
        results = list(
            pool.map(lambda p: collab("slides", "add", str(p), "--case", "S26-1", data_dir=data_dir), damaged)
        )
    for path, result in zip(damaged, results, strict=True):
        if result.returncode == 0:
            added.append((path, result.stdout.split("\t")[0]))
            continue
        message = result.stderr.strip()
        assert "Traceback" not in message and message, (path.name, message)
        assert len(message.splitlines()) == 1, (path.name, message)
    server = start_server(data_dir)
    try:
        server.client.headers["Authorization"] = f"Bearer {api_token(data_dir, 'north.path')}"
        for path, slide_id in added:
            dzi = server.get(f"/slides/{slide_id}.dzi")
            _check_answer(dzi, path.name)
            if dzi.status_code != 200:
                continue
            levels = re.findall(r'Width="(\d+)" Height="(\d+)"', dzi.text)
            assert levels
            top = math.ceil(math.log2(max(int(levels[0][0]), int(levels[0][1]))))
            for level in (0, top // 2, top - 1, top):
                for col, row in ((0, 0), (1, 1), (2, 0)):
                    _check_answer(server.get(f"/slides/{slide_id}_files/{level}/{col}_{row}.jpeg"), path.name)
            _check_answer(server.get(f"/slides/{slide_id}/thumbnail.jpeg"), path.name)
            _check_answer(server.get(f"/api/slides/{slide_id}"), path.name)
        assert server.get(f"/slides/{good_id}_files/9/0_0.jpeg").status_code == 200
        assert server.get("/healthz").status_code == 200
    finally:
        stop_server(server)
    _no_traceback(data_dir)
