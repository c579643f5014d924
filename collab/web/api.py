"""The write API's common ground: problem answers, bounded JSON bodies, CSRF for session
callers, and the OpenAPI description that every ``/api/`` route adds itself to.

A route module describes each of its ``/api/`` operations with ``describe(...)`` at import
time; ``/api/openapi.json`` serves them all, and a test checks that every ``/api/`` route
of the app is described and answers as described.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.web.errors import PROBLEM, problem
from collab.web.forms import read_body

# A JSON body of the write API: a case, a meeting, a user, an agenda. Files go elsewhere.
MAX_JSON_BYTES = 256 * 1024


def session_csrf_ok(request: Request) -> bool:
    """A caller signed in by session cookie sends the session's CSRF token in ``X-CSRF-Token``
    (a page reads it from its ``<meta name="csrf">``); a bearer-token caller sends no cookie
    that a forged request could ride on, so it needs none."""
    if request.scope.get("session") is None:
        return True
    expected = request.scope.get("csrf")
    return bool(expected) and request.headers.get("x-csrf-token") == expected


async def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any] | Response:
    """The request's JSON object, or the problem to answer with: no CSRF token (session
    callers), not JSON, too large, malformed, or not an object."""
    if not session_csrf_ok(request):
        return problem(403, "Missing or wrong X-CSRF-Token header for this session.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return problem(415, "Send the body as application/json.")
    body = await read_body(request, max_bytes)
    if isinstance(body, Response):
        return problem(body.status_code, f"The body is over {max_bytes // 1024} KiB.")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return problem(400, "The body is not valid JSON.")
    if not isinstance(value, dict):
        return problem(422, "The body must be a JSON object.")
    return value


@dataclass
class Operation:
    """One ``/api/`` operation as OpenAPI 3.1 sees it (schemas are JSON Schema 2020-12)."""

    path: str  # Starlette's form, e.g. /api/cases/{case_id}
    method: str  # lower case
    summary: str
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    body: dict[str, Any] | None = None
    status: int = 200
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag: str = "collab"


OPERATIONS: list[Operation] = []


def describe(
    path: str,
    method: str,
    summary: str,
    *,
    response: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    status: int = 200,
    query: dict[str, dict[str, Any]] | None = None,
    tag: str = "collab",
) -> None:
    """Add an operation to the API's description (once: a module imported twice adds nothing)."""
    method = method.lower()
    if any(op.path == path and op.method == method for op in OPERATIONS):
        return
    OPERATIONS.append(
        Operation(path, method, summary, response or {"type": "object"}, body, status, query or {}, tag)
    )


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        parts = [part[1:-1].split(":")[0] if part.startswith("{") else part for part in op.path.split("/")]
        openapi_path = "/".join(
            "{" + p + "}" if op.path.split("/")[i].startswith("{") else p for i, p in enumerate(parts)
        )
        query = [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in op.query.items()
        ]
        entry: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": op.method + "_" + "_".join(p for p in parts if p),
            "parameters": _path_parameters(op.path) + query,
            "responses": {
                str(op.status): {
                    "description": "OK",
                    "content": {"application/json": {"schema": op.response}},
                },
                "default": {
                    "description": "A problem (RFC 9457)",
                    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                },
            },
        }
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
        paths.setdefault(openapi_path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "collab",
            "version": "1",
            "description": "Cases, meetings, people and slides of collab. Authenticate with "
            "`Authorization: Bearer <token>` (`collab users token NAME`), or with the session "
            "cookie and the `X-CSRF-Token` header.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                }
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def me(request: Request) -> Response:
    """Who the caller is: a Yjs tool writes this id as the ``author`` of what it adds."""
    user = request.scope.get("user")
    if user is None:
        return problem(401, "Sign in, or send Authorization: Bearer <token>.")
    org = await request.app.state.db.catalog.org(user.org_id)
    return JSONResponse(
        {
            "id": user.id,
            "username": user.username,
            "name": user.display_name,
            "role": user.role,
            "organisation": org.name if org else None,
        }
    )


USER = {
    "type": "object",
    "required": ["id", "username", "name", "role", "organisation"],
    "properties": {
        "id": {"type": "integer"},
        "username": {"type": "string"},
        "name": {"type": "string"},
        "role": {"type": "string"},
        "organisation": {"type": ["string", "null"]},
    },
}
describe("/api/me", "get", "The caller: id, name, role and organisation", response=USER, tag="people")
describe("/api/openapi.json", "get", "This description", tag="meta")

routes = [Route("/api/me", me), Route("/api/openapi.json", openapi_json)]
