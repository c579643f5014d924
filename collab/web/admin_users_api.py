"""The JSON twins of the people page (collab.web.admin_users): same acts, same audit."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.domain import ROLES, SPECIALTIES
from collab.store.database import StoreError
from collab.web import admin_users as acts
from collab.web.api import describe, read_json
from collab.web.auth import current_user
from collab.web.errors import problem

ACCOUNT = {
    "type": "object",
    "required": ["id", "username", "name", "role", "organisation", "status"],
    "properties": {
        "id": {"type": "integer"},
        "username": {"type": "string"},
        "name": {"type": "string"},
        "role": {"enum": list(ROLES)},
        "organisation": {"type": "string"},
        "specialty": {"type": ["string", "null"]},
        "status": {"enum": ["active", "invited", "deactivated", "locked"]},
        "created": {"type": "string"},
        "deactivated": {"type": ["string", "null"]},
        "invite_expires": {"type": ["string", "null"]},
    },
}
INVITATION = {
    "type": "object",
    "properties": {"invite_url": {"type": "string"}, "invite_expires": {"type": "string"}},
}
SPECIALTY = {"enum": [*SPECIALTIES, None]}
NEW_ACCOUNT = {
    "type": "object",
    "required": ["username", "role", "organisation"],
    "properties": {
        "username": {"type": "string"},
        "name": {"type": "string"},
        "role": {"enum": list(ROLES)},
        "organisation": {"type": "string", "description": "the trust's name"},
        "specialty": SPECIALTY,
        "password": {"type": "string", "description": "an initial password; or set invite"},
        "invite": {"type": "boolean", "description": "true: answer with a one-time link instead"},
    },
}
CHANGES = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "role": {"enum": list(ROLES)},
        "organisation": {"type": "string"},
        "specialty": SPECIALTY,
        "active": {"type": "boolean"},
    },
}
RESET = {
    "type": "object",
    "properties": {
        "password": {"type": "string", "description": "a new initial password; absent: an invitation"}
    },
}

_TYPES: dict[str, type | tuple[type, ...]] = {
    "username": str,
    "name": str,
    "role": str,
    "organisation": str,
    "specialty": (str, type(None)),
    "password": (str, type(None)),
    "invite": bool,
    "active": bool,
}


def _checked(body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any] | Response:
    """The body's fields if each is known and of its type, else the problem to answer."""
    for key, value in body.items():
        if key not in allowed:
            return problem(422, f"Unknown field {key!r}; expected some of: {', '.join(allowed)}.")
        if not isinstance(value, _TYPES[key]):
            return problem(422, f"{key!r} has the wrong type.")
    return body


async def _admin(request: Request) -> Response | None:
    return None if acts.is_admin(current_user(request)) else problem(403, acts.NOT_ADMIN)


async def _with_org(request: Request, fields: dict[str, Any]) -> None:
    if "organisation" in fields:
        fields["org_id"] = await acts.org_id(request.app.state.db, fields.pop("organisation"))


async def users_json(request: Request) -> Response:
    """``GET /api/admin/users``"""
    if refused := await _admin(request):
        return refused
    return JSONResponse({"users": await acts.listing(request)})


async def users_create_json(request: Request) -> Response:
    """``POST /api/admin/users``"""
    if refused := await _admin(request):
        return refused
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    fields = _checked(body, tuple(NEW_ACCOUNT["properties"]))  # type: ignore[arg-type]
    if isinstance(fields, Response):
        return fields
    if not all(isinstance(fields.get(k), str) for k in ("username", "role", "organisation")):
        return problem(422, "username, role and organisation are needed.")
    try:
        await _with_org(request, fields)
        account, invitation = await acts.create(request, fields)
    except StoreError as exc:
        return problem(422, str(exc))
    answer = acts.account_json(account, 0)
    if invitation is not None:
        answer |= {"invite_url": invitation.url, "invite_expires": invitation.expires}
    return JSONResponse(answer, status_code=201)


async def user_change_json(request: Request) -> Response:
    """``PATCH /api/admin/users/{user_id}``"""
    if refused := await _admin(request):
        return refused
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    fields = _checked(body, tuple(CHANGES["properties"]))  # type: ignore[arg-type]
    if isinstance(fields, Response):
        return fields
    try:
        await _with_org(request, fields)
        account = await acts.change(request, request.path_params["user_id"], fields)
    except LookupError as exc:
        return problem(404, str(exc))
    except StoreError as exc:
        return problem(422, str(exc))
    return JSONResponse(acts.account_json(account, 0))


async def user_act_json(request: Request) -> Response:
    """``POST /api/admin/users/{user_id}/invite|reset|unlock``"""
    if refused := await _admin(request):
        return refused
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    act = request.url.path.rsplit("/", 1)[1]
    fields = _checked(body, ("password",) if act == "reset" else ())
    if isinstance(fields, Response):
        return fields
    user_id = request.path_params["user_id"]
    try:
        if act == "unlock":
            await acts.unlock(request, user_id)
            return JSONResponse({"unlocked": True})
        invitation = await acts.reset(request, user_id, fields.get("password") if act == "reset" else None)
    except LookupError as exc:
        return problem(404, str(exc))
    except StoreError as exc:
        return problem(422, str(exc))
    if invitation is None:
        return JSONResponse({"reset": True})
    return JSONResponse({"invite_url": invitation.url, "invite_expires": invitation.expires})


_PEOPLE = "/api/admin/users"
describe(
    _PEOPLE,
    "get",
    "Everyone's account (administrators)",
    tag="admin",
    response={"type": "object", "properties": {"users": {"type": "array", "items": ACCOUNT}}},
)
describe(
    _PEOPLE,
    "post",
    "Create an account with a password or a one-time invitation link (administrators)",
    body=NEW_ACCOUNT,
    response={**ACCOUNT, "properties": {**ACCOUNT["properties"], **INVITATION["properties"]}},  # type: ignore[dict-item]
    status=201,
    tag="admin",
)
describe(
    _PEOPLE + "/{user_id:int}",
    "patch",
    "Change role, organisation, specialty, name, or deactivate (administrators)",
    body=CHANGES,
    response=ACCOUNT,
    tag="admin",
)
describe(
    _PEOPLE + "/{user_id:int}/invite",
    "post",
    "A new one-time invitation link; the password stops working",
    body={"type": "object"},
    response=INVITATION,
    tag="admin",
)
describe(
    _PEOPLE + "/{user_id:int}/reset",
    "post",
    "A new initial password, or (no password given) an invitation",
    body=RESET,
    response={"type": "object"},
    tag="admin",
)
describe(
    _PEOPLE + "/{user_id:int}/unlock",
    "post",
    "Let someone locked out by failed sign-ins try again now",
    body={"type": "object"},
    response={"type": "object", "properties": {"unlocked": {"type": "boolean"}}},
    tag="admin",
)

routes = [
    Route(_PEOPLE, users_json, methods=["GET"]),
    Route(_PEOPLE, users_create_json, methods=["POST"]),
    Route(_PEOPLE + "/{user_id:int}", user_change_json, methods=["PATCH"]),
    Route(_PEOPLE + "/{user_id:int}/invite", user_act_json, methods=["POST"]),
    Route(_PEOPLE + "/{user_id:int}/reset", user_act_json, methods=["POST"]),
    Route(_PEOPLE + "/{user_id:int}/unlock", user_act_json, methods=["POST"]),
]
