"""Updates whose shape would harm the room (collab.sync.yupdate): values nested or sized past the
limits, shared types nested too deep in one update or across many, parts our documents never hold.

Each must be refused before yrs sees it, closing only its sender (1007), with the server alive
and everyone else's document untouched; every update the viewer and pycrdt make must pass.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    XmlElement,
    XmlFragment,
    XmlText,
    YSyncMessageType,
    write_var_uint,
)

from collab.sync.nesting import Nesting
from collab.sync.protocol import parse_state_vector
from collab.sync.yupdate import (
    MAX_TYPE_DEPTH,
    MAX_VALUE_BYTES,
    MAX_VALUE_DEPTH,
    MalformedUpdate,
    UpdateRefused,
    read_update,
)
from tests.conftest import REPO, Server, room_people, seed_case, start_server, stop_server
from tests.test_teaching import Classroom, _educator_json, classroom, join  # noqa: F401 (fixture)
from tests.yclient import YClient, point_annotation
from tests.yencode import (
    ANY,
    BINARY,
    DOC,
    EMBED,
    FORMAT,
    JSON,
    STRING,
    TYPE,
    Y_ARRAY,
    Y_MAP,
    Y_XML_ELEMENT,
    Y_XML_HOOK,
    any_,
    any_content,
    item,
    nested_any,
    string,
    type_content,
    uint,
    update,
)

EMPTY = b"\x00\x00"
C = 4242  # the Yjs client id of hand-made updates


def _state_after(updates: list[bytes]) -> dict[int, int]:
    doc: Doc[Any] = Doc()
    for data in updates:
        doc.apply_update(data)
    return parse_state_vector(doc.get_state())


def _clocks_read(updates: list[bytes]) -> dict[int, int]:
    """The state vector as the reader sees it: each client's clock after its last struct."""
    clocks: dict[int, int] = {}
    for data in updates:
        clocks.update(read_update(data).clocks)
    return clocks


def _passes_in_order(updates: list[bytes], state: bytes = EMPTY) -> None:
    nesting = Nesting(state)
    for data in updates:
        nesting.record(nesting.check(data))


# ---------------------------------------------------------------------------------------------
# The reader on real updates


def _pycrdt_updates() -> list[bytes]:
    """What pycrdt writes: annotations, messages, plain values of every kind, text with
    formats and embeds, nested types, deletions; each transaction's update, then the whole."""
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    annotations = doc.get("annotations", type=Map)
    annotations["a1"] = point_annotation(7, "Zellkern — 核 🔬")
    annotations["a1"]["label"] = "changed"
    with doc.transaction():
        for i in range(50):
            annotations[f"f{i}"] = point_annotation(7, f"n{i}")
    discussion = doc.get("discussion", type=Array)
    discussion.append(Map({"id": "m1", "text": "🔬" * 100, "author": "7"}))
    discussion.extend(["plain", 1, 2.5, None, True, {"a": [1, {"b": "c"}]}, -(2**40), 2**60])
    del discussion[1:3]
    meta = doc.get("meta", type=Map)
    meta["nested"] = Map({"inner": Array([Map({"x": 1})])})
    meta["text"] = Text("héllo 🔬 wörld")
    text = meta["text"]
    text.insert(0, "bold ", {"bold": True, "deep": {"a": [1, 2]}})
    text.insert_embed(2, {"image": "x.png"}, {"width": 10})
    text.format(1, 4, {"italic": True})
    del text[3:6]
    del annotations["f3"]
    doc.get("outcome", type=Map)["diagnosis"] = "Invasive carcinoma, NST"
    doc.unobserve(subscription)
    return updates


def test_the_reader_reads_every_update_pycrdt_makes_as_yrs_does() -> None:
    updates = _pycrdt_updates()
    assert _clocks_read(updates) == _state_after(updates)
    _passes_in_order(updates)
    whole = _whole(updates)
    assert read_update(whole).clocks == _state_after([whole])
    _passes_in_order([whole])
    Nesting(whole)  # a room loading this document


def _whole(updates: list[bytes]) -> bytes:
    doc: Doc[Any] = Doc()
    for data in updates:
        doc.apply_update(data)
    return doc.get_update()


def _viewer_updates() -> dict[str, Any]:
    if shutil.which("node") is None or not (REPO / "node_modules" / "yjs").exists():
        pytest.skip("node and the npm packages (scripts/setup) are needed")
    done = subprocess.run(
        ["node", str(REPO / "tests" / "node" / "viewer_updates.mjs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    made: dict[str, Any] = json.loads(done.stdout)
    return made


def test_every_update_the_viewer_makes_passes() -> None:
    made = _viewer_updates()
    updates = [base64.b64decode(u) for u in made["updates"]]
    full, merged = base64.b64decode(made["full"]), base64.b64decode(made["merged"])
    state = parse_state_vector(base64.b64decode(made["state"]))
    assert _clocks_read(updates) == _state_after(updates) == state
    assert read_update(full).clocks == state
    _passes_in_order(updates)
    _passes_in_order(updates[:6] + [merged, full])
    shape = read_update(merged)
    assert shape.clocks == state
    assert sum(s.length for s in shape.items) < sum(state.values())  # gaps: Skip structs
    # The largest value the viewer writes (a 20,000-point freehand outline) is well inside.
    assert made["largest"] < MAX_VALUE_BYTES / 2


# ---------------------------------------------------------------------------------------------
# Shapes past the limits, and what is not an update at all


def _in_meta(kind: int, content: bytes, key: str = "k") -> bytes:
    return update([(C, 0, [item(kind, content, parent="meta", key=key)])])


def _nested_objects(depth: int) -> bytes:
    return b"\x76\x01\x01a" * depth + b"\x7e"  # {"a": {"a": ... null}}


REFUSED = {
    "any nested one level past the limit": _in_meta(ANY, uint(1) + nested_any(MAX_VALUE_DEPTH + 1)),
    "any nested 40,000 deep": _in_meta(ANY, uint(1) + nested_any(40_000)),
    "objects nested past the limit": _in_meta(ANY, uint(1) + _nested_objects(MAX_VALUE_DEPTH + 1)),
    "deep value after a shallow one": _in_meta(ANY, uint(2) + any_(1) + nested_any(MAX_VALUE_DEPTH + 1)),
    "text past the limit": _in_meta(STRING, string("x" * (MAX_VALUE_BYTES + 1))),
    "an any string past the limit": _in_meta(ANY, any_content("é" * (MAX_VALUE_BYTES // 2))),
    "an any list past the limit": _in_meta(ANY, any_content(["abcdefgh"] * (MAX_VALUE_BYTES // 10 + 1))),
    "binary past the limit": _in_meta(BINARY, uint(MAX_VALUE_BYTES + 1) + bytes(MAX_VALUE_BYTES + 1)),
    "a key past the limit": _in_meta(ANY, any_content(1), key="k" * (MAX_VALUE_BYTES + 1)),
    "embedded JSON nested past the limit": _in_meta(
        EMBED, string("[" * (MAX_VALUE_DEPTH + 1) + "]" * (MAX_VALUE_DEPTH + 1))
    ),
    "a format's JSON nested past the limit": _in_meta(
        FORMAT, string("bold") + string('{"a":' * (MAX_VALUE_DEPTH + 1) + "1" + "}" * (MAX_VALUE_DEPTH + 1))
    ),
    "a subdocument": _in_meta(DOC, string("guid") + any_({"gc": True})),
    "legacy JSON content (yrs and Yjs read it differently)": _in_meta(JSON, uint(1) + string("[1]")),
    "an XML element": _in_meta(TYPE, type_content(Y_XML_ELEMENT, "p")),
    "an XML hook (yrs and Yjs read it differently)": _in_meta(TYPE, type_content(Y_XML_HOOK, "h")),
    "a weak link": _in_meta(TYPE, uint(7)),
    "an undefined type": _in_meta(TYPE, uint(15)),
    "an empty item": _in_meta(ANY, uint(0)),
    "a client listed twice": update(
        [
            (C, 0, [item(ANY, any_content(1), parent="meta", key="a")]),
            (C, 1, [item(ANY, any_content(2), parent="meta", key="b")]),
        ]
    ),
    "clocks past 32 bits": update([(C, 2**32 - 1, [item(ANY, any_content(1, 2), parent="meta", key="k")])]),
    "a deletion past 32 bits": update([], [(C, [(2**32 - 1, 2)])]),
}


@pytest.mark.parametrize("name", REFUSED)
def test_shapes_past_a_limit_are_refused(name: str) -> None:
    with pytest.raises(UpdateRefused):
        read_update(REFUSED[name])


def test_values_at_the_limits_pass() -> None:
    at_limit = [
        _in_meta(ANY, uint(1) + nested_any(MAX_VALUE_DEPTH)),
        _in_meta(ANY, uint(1) + _nested_objects(MAX_VALUE_DEPTH)),
        _in_meta(STRING, string("x" * MAX_VALUE_BYTES)),
        _in_meta(ANY, any_content("x" * (MAX_VALUE_BYTES - 4))),  # tag and length: 4 bytes
        _in_meta(EMBED, string("[" * MAX_VALUE_DEPTH + '"[[[[\\"]]"' + "]" * MAX_VALUE_DEPTH)),
    ]
    for data in at_limit:
        read_update(data)
        _state_after([data])  # and yrs takes it


def test_what_is_not_an_update_is_malformed() -> None:
    real = _pycrdt_updates()[0]
    for cut in range(len(real)):
        with pytest.raises(MalformedUpdate):
            read_update(real[:cut])
    for bad in (
        real + b"\x00",  # bytes after the delete set
        _in_meta(ANY, uint(1) + b"\x73"),  # no such value tag
        _in_meta(STRING, uint(2) + b"\xc3\x28"),  # not UTF-8
        update([(C, 0, [bytes([0x1F])])]),  # no such content kind
        update([(C, 0, [bytes([0x2A]) + uint(3)])]),  # a skip with flags: yrs reads an item
    ):
        with pytest.raises(MalformedUpdate):
            read_update(bad)


# ---------------------------------------------------------------------------------------------
# Shared types nested in one update and across many


def _map_under(parent: str | tuple[int, int], key: str = "k") -> bytes:
    return item(TYPE, type_content(Y_MAP), parent=parent, key=key)


def _chain(levels: int, client: int = C) -> bytes:
    """``levels`` maps, each in the one before, the first in ``meta``: one update."""
    structs = [_map_under("meta")] + [_map_under((client, i - 1)) for i in range(1, levels)]
    return update([(client, 0, structs)])


def test_types_nested_past_the_limit_in_one_update_are_refused() -> None:
    Nesting(EMPTY).check(_chain(MAX_TYPE_DEPTH))
    for levels in (MAX_TYPE_DEPTH + 1, 40_000):
        with pytest.raises(UpdateRefused):
            Nesting(EMPTY).check(_chain(levels))


def test_types_nested_across_updates_are_refused_at_the_limit() -> None:
    nesting = Nesting(EMPTY)
    nesting.record(nesting.check(update([(C, 0, [_map_under("meta")])])))
    for level in range(2, MAX_TYPE_DEPTH + 1):
        nesting.record(nesting.check(update([(C, level - 1, [_map_under((C, level - 2))])])))
    deeper = update([(C, MAX_TYPE_DEPTH, [_map_under((C, MAX_TYPE_DEPTH - 1))])])
    with pytest.raises(UpdateRefused):
        nesting.check(deeper)
    # Placed beside the deepest map (its origin), a new map is as deep, so nothing goes in it.
    beside = update([(7, 0, [item(TYPE, type_content(Y_MAP), origin=(C, MAX_TYPE_DEPTH - 1))])])
    nesting.record(nesting.check(beside))
    with pytest.raises(UpdateRefused):
        nesting.check(update([(7, 1, [_map_under((7, 0))])]))
    # Clients come in any order within an update: a parent may be written after its child.
    out_of_order = update([(9, 0, [_map_under((8, 0)), _map_under((9, 0))]), (8, 0, [_map_under("meta")])])
    nesting.check(out_of_order)


def test_a_room_loaded_from_disk_knows_how_deep_its_types_are() -> None:
    stored = _whole([_chain(MAX_TYPE_DEPTH)])  # as yrs writes it back
    nesting = Nesting(stored)
    nesting.check(update([(5, 0, [_map_under((C, MAX_TYPE_DEPTH - 2))])]))
    with pytest.raises(UpdateRefused):
        nesting.check(update([(5, 0, [_map_under((C, MAX_TYPE_DEPTH - 1))])]))


def test_a_document_stored_before_these_limits_still_loads() -> None:
    """What is stored is read, whatever it holds, so that the case still opens."""
    doc: Doc[Any] = Doc()
    doc.get("annotations", type=Map)["a1"] = point_annotation(7, "before")
    meta = doc.get("meta", type=Map)
    meta["xml"] = XmlFragment([XmlElement("p", contents=[XmlText("text")])])
    meta["long"] = "x" * (MAX_VALUE_BYTES + 1)
    doc.apply_update(_in_meta(ANY, uint(1) + nested_any(MAX_VALUE_DEPTH + 5), key="deep"))
    # Legacy JSON content, as yrs reads it (one more text than the count says) and writes it.
    doc.apply_update(
        update([(C, 0, [item(JSON, uint(1) + string("[1]") + string('"a"'), parent="discussion")])])
    )
    stored = doc.get_update()
    annotation = read_update(stored, limits=False).items[0]
    assert annotation.parent == "annotations"
    nesting = Nesting(stored)
    field = update([(11, 0, [_map_under((annotation.client, annotation.clock), "label")])])
    nesting.check(field)  # its place is known: the annotation's map is 1 deep


def test_a_type_whose_place_is_unknown_counts_as_deepest() -> None:
    """A struct whose origin is missing waits in yrs until it arrives: whatever it holds could
    land at any depth then, so it may hold nothing now."""
    nesting = Nesting(EMPTY)
    alone = update([(C, 0, [item(TYPE, type_content(Y_MAP), origin=(5, 3))])])
    nesting.check(alone)
    with pytest.raises(UpdateRefused):
        nesting.check(update([(C, 0, [item(TYPE, type_content(Y_MAP), origin=(5, 3)), _map_under((C, 0))])]))
    cycle = update([(C, 0, [item(TYPE, type_content(Y_MAP), origin=(C, 1)), _map_under((C, 0))])])
    with pytest.raises(UpdateRefused):
        nesting.check(cycle)


# ---------------------------------------------------------------------------------------------
# Against a real server


@dataclass
class Site:
    server: Server
    url: str
    tokens: dict[str, str]
    ids: dict[str, int]
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A case with its pathologist (who watches) and a trainee (who contributes)."""
    data_dir = tmp_path_factory.mktemp("shape")
    seed_case(data_dir)
    case_id, tokens, ids = room_people(data_dir, clinician=False)
    server = start_server(data_dir)
    loop = asyncio.new_event_loop()
    try:
        url = server.url.replace("http://", "ws://") + f"/ws/cases/{case_id}"
        yield Site(server, url, tokens, ids, loop)
    finally:
        loop.close()
        stop_server(server)
    log = (data_dir / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


def _update_frame(payload: bytes) -> bytes:
    return bytes([0, YSyncMessageType.SYNC_UPDATE]) + write_var_uint(len(payload)) + payload


async def _answers(client: YClient) -> bool:
    """Ask for the awareness states and wait for the answer (or the close): True if still open."""
    before = len(client.frames)
    await client.send_raw(b"\x03")
    await client.wait_for(lambda: client.closed.is_set() or len(client.frames) > before, timeout=15)
    return not client.closed.is_set()


def _content(doc: Doc[Any]) -> dict[str, Any]:
    roots = set(doc.keys())
    return {name: doc.get(name, type=Map).to_py() for name in ("annotations", "meta") if name in roots}


def _alive(server: Server) -> None:
    try:
        healthy = server.get("/healthz").status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=10)
        log = (server.data_dir / "server.log").read_text(errors="replace")
        pytest.fail(f"the server died (exit {server.process.returncode}); its log ends:\n{log[-1500:]}")


async def _refused_alone(site: Site, observer: YClient, payload: bytes) -> None:
    """Send ``payload`` as a contributor: it must be refused with 1007 and harm nobody."""
    before = _content(observer.doc)
    bad = await YClient(site.url, site.tokens["north.trainee"]).connect()
    await bad.synced.wait()
    await bad.send_raw(_update_frame(payload))
    await _answers(bad)
    _alive(site.server)
    assert bad.closed.is_set(), "the update was accepted"
    assert bad.close_code == 1007, (bad.close_code, bad.close_reason)
    assert await _answers(observer), "the observer was disconnected"
    assert _content(observer.doc) == before


DEEP = {
    "any 40,000 deep in an annotation": update(
        [(C, 0, [item(ANY, uint(1) + nested_any(40_000), parent="annotations", key="evil")])]
    ),
    "any 15,000 deep under meta": _in_meta(ANY, uint(1) + nested_any(15_000)),
    "maps 40,000 deep under meta": _chain(40_000),
}


@pytest.mark.parametrize("name", DEEP)
def test_a_deep_update_closes_its_sender_with_1007_and_the_room_lives(site: Site, name: str) -> None:
    async def scenario() -> None:
        observer = await YClient(site.url, site.tokens["north.path"]).connect()
        await observer.synced.wait()
        await _refused_alone(site, observer, DEEP[name])
        await observer.close()

    site.run(scenario())


def test_maps_nested_one_update_at_a_time_are_refused_past_the_limit(site: Site) -> None:
    client = 777

    async def scenario() -> None:
        observer = await YClient(site.url, site.tokens["north.path"]).connect()
        await observer.synced.wait()
        writer = await YClient(site.url, site.tokens["north.trainee"]).connect()
        await writer.synced.wait()
        for level in range(1, MAX_TYPE_DEPTH + 1):
            parent = "meta" if level == 1 else (client, level - 2)
            await writer.send_raw(_update_frame(update([(client, level - 1, [_map_under(parent, "tower")])])))
            assert await _answers(writer), (level, writer.close_code, writer.close_reason)
        await observer.wait_for(lambda: "tower" in observer.doc.get("meta", type=Map))
        await writer.close()
        deeper = update([(client, MAX_TYPE_DEPTH, [_map_under((client, MAX_TYPE_DEPTH - 1), "tower")])])
        await _refused_alone(site, observer, deeper)
        await observer.close()

    site.run(scenario())


def test_a_guest_holding_the_pen_is_refused_too(classroom: Classroom) -> None:  # noqa: F811
    ann, bob = join(classroom, "Ann"), join(classroom, "Bob")

    async def scenario() -> None:
        a = await YClient(classroom.ws(), "", headers=ann.cookie_header()).connect()
        b = await YClient(classroom.ws(), "", headers=bob.cookie_header()).connect()
        await a.wait_for(a.synced.is_set)
        await b.wait_for(b.synced.is_set)
        before = b.annotations().to_py()
        given = await asyncio.to_thread(_educator_json, classroom, "/pen", {"participant": ann.participant})
        assert given.status_code == 200, given.text
        await a.wait_for(lambda: a.doc.get("session", type=Map).get("penName") == "Ann")
        await a.send_raw(_update_frame(DEEP["any 40,000 deep in an annotation"]))
        await a.wait_for(a.closed.is_set, timeout=15)
        _alive(classroom.server)
        assert a.close_code == 1007, (a.close_code, a.close_reason)
        assert await _answers(b), "another student was disconnected"
        assert b.annotations().to_py() == before
        await b.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# Generated shapes, each sent to one server by a contributor


# ("value", v), ("deep", n), ("text", n), ("map", {key: node}), ("array", [node]) or ("chain", n)
Node = tuple[Any, ...]


def _value_depth(value: Any) -> int:
    deepest, stack = 0, [(value, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list | dict):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


class _Builder:
    """Writes a shape as one client's structs (tests.yencode), noting what should be refused."""

    def __init__(self, client: int) -> None:
        self.client, self.clock = client, 0
        self.structs: list[bytes] = []
        self.deepest_type = 0
        self.past_value_limit = False

    def put(self, node: Node, depth: int, **place: Any) -> Any:
        """Write ``node`` at ``depth`` (parent and key, or origin); returns its plain value."""
        this = (self.client, self.clock)
        self.deepest_type = max(self.deepest_type, depth)
        self.clock += 1
        kind = node[0]
        if kind in ("value", "deep", "text"):
            if kind == "deep":
                value: Any = None
                for _ in range(node[1]):
                    value = [value]
                raw = nested_any(node[1])
            else:
                value = node[1] if kind == "value" else "x" * node[1]
                raw = any_(value)
            self.past_value_limit |= len(raw) > MAX_VALUE_BYTES or _value_depth(value) > MAX_VALUE_DEPTH
            self.structs.append(item(ANY, uint(1) + raw, **place))
            return value
        self.structs.append(item(TYPE, type_content(Y_ARRAY if kind == "array" else Y_MAP), **place))
        if kind == "map":
            return {key: self.put(child, depth + 1, parent=this, key=key) for key, child in node[1].items()}
        if kind == "array":
            values, left = [], None
            for child in node[1]:
                first = (self.client, self.clock)
                values.append(self.put(child, depth + 1, **({"origin": left} if left else {"parent": this})))
                left = first
            return values
        inner: dict[str, Any] = {}  # a chain: maps in maps, one update
        for level in range(1, node[1]):
            self.deepest_type = max(self.deepest_type, depth + level)
            self.structs.append(_map_under((self.client, self.clock - 1)))
            self.clock += 1
        for _ in range(node[1] - 1):
            inner = {"k": inner}
        return inner


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | _text
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)
_tree: st.SearchStrategy[Node] = st.recursive(
    _plain.map(lambda v: ("value", v)) | st.integers(1, 60).map(lambda n: ("deep", n)),
    lambda inner: (
        st.dictionaries(st.text("abcdef", min_size=1, max_size=3), inner, max_size=3).map(
            lambda d: ("map", d)
        )
        | st.lists(inner, max_size=3).map(lambda xs: ("array", xs))
    ),
    max_leaves=12,
)
_shapes = st.one_of(
    _tree,
    st.integers(1, MAX_TYPE_DEPTH + 4).map(lambda n: ("chain", n)),  # maps in maps
    st.integers(1, 3000).map(lambda n: ("map", {f"k{i}": ("value", i) for i in range(n)})),  # wide
    st.integers(1, 3000).map(lambda n: ("array", [("value", f"v{i}") for i in range(n)])),  # many items
    # an Any string: tag and length take 4 bytes at this size
    st.sampled_from([-64, 0, 1, 64]).map(lambda d: ("text", MAX_VALUE_BYTES - 4 + d)),
    st.sampled_from([MAX_VALUE_DEPTH, MAX_VALUE_DEPTH + 1, 15_000]).map(lambda n: ("deep", n)),
)


def test_generated_update_shapes_never_harm_the_room(site: Site) -> None:
    trainee = site.ids["north.trainee"]
    observer: YClient = site.run(YClient(site.url, site.tokens["north.path"]).connect())
    site.run(observer.synced.wait())
    outcomes: dict[str, int] = {}

    async def attempt(number: int, shape: Node) -> None:
        key = f"shape-{number}"
        built = _Builder(2**40 + number)
        built.put(("map", {}), 1, parent="annotations", key=key)  # the annotation's map
        built.put(("value", str(trainee)), 2, parent=(built.client, 0), key="author")
        expected = built.put(shape, 2, parent=(built.client, 0), key="shape")
        refused = built.past_value_limit or built.deepest_type > MAX_TYPE_DEPTH
        before = _content(observer.doc)
        sender = await YClient(site.url, site.tokens["north.trainee"]).connect()
        await sender.synced.wait()
        await sender.send_raw(_update_frame(update([(built.client, 0, built.structs)])))
        accepted = await _answers(sender)
        _alive(site.server)
        outcome = "accepted" if accepted else str(sender.close_code)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if refused:
            assert sender.close_code == 1007, (shape[:1], sender.close_code, sender.close_reason)
        elif accepted:
            await observer.wait_for(lambda: key in observer.annotations())
            assert observer.annotations()[key].to_py()["shape"] == expected
        else:  # another check of the room's may refuse it, never this one
            assert sender.close_code in {4400, 4403, 4413}, (sender.close_code, sender.close_reason)
        if not accepted:
            assert await _answers(observer), "the observer was disconnected"
            assert _content(observer.doc) == before
        await sender.close()

    count = iter(range(10**6))

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(shape=_shapes)
    def shapes(shape: Node) -> None:
        site.run(attempt(next(count), shape))

    shapes()

    async def fresh() -> dict[str, Any]:  # the server's document, as a newcomer receives it
        late = await YClient(site.url, site.tokens["north.path"]).connect()
        await late.synced.wait()
        state = _content(late.doc)
        await late.close()
        return state

    assert site.run(fresh()) == _content(observer.doc)
    site.run(observer.close())
    assert {"accepted", "1007"} <= outcomes.keys(), outcomes
