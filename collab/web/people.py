"""The people directory behind every picker: only those the caller may find (domain.may_find)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.store import Database
from collab.web.api import describe
from collab.web.auth import current_user
from collab.web.errors import problem

MAX_LIMIT = 50
MAX_QUERY = 100

PERSON = {
    "type": "object",
    "required": ["id", "username", "name", "role", "organisation", "specialty"],
    "properties": {
        "id": {"type": "integer"},
        "username": {"type": "string"},
        "name": {"type": "string"},
        "role": {"type": "string"},
        "organisation": {"type": "string"},
        "specialty": {"type": ["string", "null"]},
    },
}


async def people_json(request: Request) -> Response:
    """``GET /api/people?q=...&limit=20``: people matching name, username or trust."""
    db: Database = request.app.state.db
    text = request.query_params.get("q", "").strip()
    raw_limit = request.query_params.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        return problem(400, f"limit is a whole number from 1 to {MAX_LIMIT}.")
    if len(text) > MAX_QUERY:
        return problem(400, f"The search is at most {MAX_QUERY} characters.")
    if len(text) < 2:
        return JSONResponse([])  # two letters at least: a directory is searched, not listed
    found = await db.people.search(current_user(request), text, int(raw_limit))
    return JSONResponse(
        [
            {
                "id": person.id,
                "username": person.username,
                "name": person.display_name,
                "role": person.role,
                "organisation": org_name,
                "specialty": person.specialty,
            }
            for person, org_name in found
        ]
    )


describe(
    "/api/people",
    "get",
    "People the caller may find, matching name, username or organisation (two letters at least)",
    response={"type": "array", "items": PERSON},
    query={"q": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
    tag="people",
)

routes = [Route("/api/people", people_json)]
