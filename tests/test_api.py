"""The write API against its own description: every ``/api/`` route is in ``/api/openapi.json``
and answers as described; bad input gets a 4xx problem (RFC 9457) and stores nothing.
Real server, real SQLite; the schemas are checked with jsonschema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.routing import Route

from collab.app import create_app
from collab.config import Settings
from tests.conftest import (
    Server,
    add_slides,
    add_user,
    api_token,
    collab,
    connect_db,
    seed_case,
    sign_in_with_form,
    start_server,
    stop_server,
    table_names,
    write_pyramid_tiff,
)

PROBLEM = "application/problem+json"


def app_api_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(path, method) of every ``/api/`` route the app serves (HEAD and OPTIONS aside)."""
    app = create_app(Settings(data_dir=tmp_path))
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/"):
            for method in route.methods or {"GET"}:
                if method not in ("HEAD", "OPTIONS"):
                    found.add((_openapi_path(route.path), method.lower()))
    return found


def _openapi_path(path: str) -> str:
    """Starlette's ``{name:type}`` as OpenAPI's ``{name}``."""
    return "/".join("{" + p[1:-1].split(":")[0] + "}" if p.startswith("{") else p for p in path.split("/"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("api") / "data"
    data_dir.mkdir()
    seed_case(data_dir)
    add_user(data_dir, "north.admin", "admin", "North Trust", "--name", "Ms Admin")
    slide = write_pyramid_tiff(data_dir.parent / "one.tiff", 600, 500, tile=256)
    (slide_id,) = add_slides(data_dir, slide)
    with connect_db(data_dir) as db:
        case_id = db.execute("SELECT id FROM cases").fetchone()[0]
        user_id = db.execute("SELECT id FROM users WHERE username = 'north.path'").fetchone()[0]
    made = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2026-12-08T09:00",
        "--chair", "north.path", "--coordinator", "north.admin", "--case", "S26-1", data_dir=data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    meeting_id = made.stdout.strip()
    server = start_server(data_dir)
    try:
        yield {
            "server": server,
            "tokens": {name: api_token(data_dir, name) for name in ("north.path", "north.admin")},
            "ids": {
                "case_id": case_id,
                "slide_id": slide_id,
                "meeting_id": meeting_id,
                "user_id": str(user_id),
            },
        }
    finally:
        stop_server(server)


def _document(server: Server) -> dict[str, Any]:
    response = httpx.get(server.url + "/api/openapi.json", timeout=30)  # public: no credentials
    assert response.status_code == 200
    return response.json()


def test_every_api_route_is_described_and_every_description_is_served(
    world: dict[str, Any], tmp_path: Path
) -> None:
    document = _document(world["server"])
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    served = app_api_routes(tmp_path)
    assert served - described == set(), "routes without a description"
    assert described - served == set(), "descriptions without a route"


def test_the_description_is_openapi_31_with_valid_schemas(world: dict[str, Any]) -> None:
    document = _document(world["server"])
    assert document["openapi"] == "3.1.0"
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (path, method)
            for answer in op["responses"].values():
                for content in answer["content"].values():
                    jsonschema.Draft202012Validator.check_schema(content["schema"])
            if "requestBody" in op:
                jsonschema.Draft202012Validator.check_schema(
                    op["requestBody"]["content"]["application/json"]["schema"]
                )


def _fill(path: str, ids: dict[str, str]) -> str:
    """A path with its parameters filled from the seeded world (unknown ones: a missing id)."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{"):
            parts.append(ids.get(part[1:-1], "999999"))
        else:
            parts.append(part)
    return "/".join(parts)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": document["components"]} if "$ref" in str(schema) else schema


def test_every_get_answers_as_described(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    document = _document(server)
    headers = {"Authorization": f"Bearer {world['tokens']['north.admin']}"}
    checked = 0
    for path, ops in document["paths"].items():
        if "get" not in ops:
            continue
        response = server.client.get(_fill(path, world["ids"]), headers=headers)
        op = ops["get"]
        if response.status_code >= 400:
            # A seeded id the admin may not open, or one the world has none of: a problem, as described.
            assert response.headers["content-type"].startswith(PROBLEM), (path, response.status_code)
            assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
            continue
        schema = op["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
        jsonschema.validate(response.json(), _resolve(document, schema))
        checked += 1
    assert checked >= 3


def _counts(data_dir: Path) -> dict[str, int]:
    """Rows of every table but the audit trail (which records refusals too)."""
    with connect_db(data_dir) as db:
        tables = table_names(db)
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables if t != "audit"}


BAD_BODIES: list[tuple[str, bytes | str]] = [
    ("application/json", b"{not json"),
    ("application/json", b"[1, 2, 3]"),
    ("application/json", b'{"name": 12, "unexpected": {"deep": [null]}}'),
    ("text/plain", b"hello"),
    ("application/json", b"\xff\xfe"),
]


def test_bad_bodies_get_a_problem_and_store_nothing(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    document = _document(server)
    headers = {"Authorization": f"Bearer {world['tokens']['north.admin']}"}
    before = _counts(server.data_dir)
    tried = 0
    for path, ops in document["paths"].items():
        for method in ops.keys() & {"post", "put", "patch"}:
            if not ops[method].get("requestBody"):
                continue
            for kind, body in BAD_BODIES:
                response = server.client.request(
                    method.upper(),
                    _fill(path, world["ids"]),
                    headers={**headers, "Content-Type": kind},
                    content=body,
                )
                assert 400 <= response.status_code < 500, (
                    method,
                    path,
                    body,
                    response.status_code,
                    response.text,
                )
                assert response.headers["content-type"].startswith(PROBLEM), (method, path)
                assert response.json()["detail"], (method, path)
                tried += 1
    assert _counts(server.data_dir) == before
    assert tried >= 5 * 10  # five bad bodies for each of the write routes (there are dozens)


def test_me_names_the_caller_by_token_and_by_session(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    by_token = httpx.get(
        server.url + "/api/me",
        headers={"Authorization": f"Bearer {world['tokens']['north.path']}"},
        timeout=30,
    )
    assert by_token.status_code == 200
    me = by_token.json()
    assert me["id"] == int(world["ids"]["user_id"])
    assert (me["username"], me["name"], me["role"], me["organisation"]) == (
        "north.path",
        "Dr North",
        "pathologist",
        "North Trust",
    )
    person = sign_in_with_form(server, "north.path")
    assert person.get("/api/me").json() == me
    person.client.close()


def test_without_credentials_the_api_answers_401_problem(world: dict[str, Any]) -> None:
    response = httpx.get(world["server"].url + "/api/me", timeout=30)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == 401
