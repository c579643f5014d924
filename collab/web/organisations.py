"""Organisations (trusts) and networks, for administrators: the list, a new trust, a rename or a
move to another network. Who may find whom follows the network (collab.domain.may_find), so a
change here is audited with what it was before.

The acts live here once; the page's forms and the JSON twins both call them.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.domain import Organisation, User
from collab.store import Database
from collab.store.database import StoreError
from collab.web.api import describe, read_json
from collab.web.auth import checked_form, client_address, current_user
from collab.web.errors import error, problem
from collab.web.render import render

NOT_ADMIN = "Only administrators manage trusts and networks."
MAX_NAME = 200


class Refused(Exception):
    """A one-line reason, answered with 400 (or 409 for a name in use)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _clean(name: Any, network: Any) -> tuple[str, str | None]:
    if not isinstance(name, str) or not name.strip():
        raise Refused("A trust needs a name.")
    if network is not None and not isinstance(network, str):
        raise Refused("The network is a name, or empty for none.")
    name, network = name.strip(), (network or "").strip() or None
    if len(name) > MAX_NAME or (network and len(network) > MAX_NAME):
        raise Refused(f"Names are at most {MAX_NAME} characters.")
    return name, network


def _org_json(org: Organisation, people: int | None = None, cases: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"id": org.id, "name": org.name, "network": org.network}
    if people is not None:
        found |= {"people": people, "cases": cases}
    return found


async def add(db: Database, by: User, name: Any, network: Any, client: str) -> Organisation:
    name, network = _clean(name, network)
    try:
        org = await db.catalog.add_org(name, network)
    except StoreError as exc:
        raise Refused(f"{exc}.".capitalize(), 409) from exc
    await db.audit.record("organisation added", user=by, client=client, detail=f"{name} (network: {network})")
    return org


async def change(db: Database, by: User, org_id: int, changes: dict[str, Any], client: str) -> Organisation:
    before = await db.catalog.org(org_id)
    if before is None:
        raise Refused("No such trust.", 404)
    name, network = _clean(changes.get("name", before.name), changes.get("network", before.network))
    try:
        after = await db.organisations.change(org_id, name=name, network=network)
    except StoreError as exc:
        raise Refused(f"{exc}.".capitalize(), 409) from exc
    assert after is not None
    await db.audit.record(
        "organisation changed",
        user=by,
        client=client,
        detail=f"{before.name} (network: {before.network}) -> {name} (network: {network})",
    )
    return after


# -- the page --------------------------------------------------------------------------


async def page(request: Request, *, message: str | None = None, status: int = 200) -> Response:
    user = current_user(request)
    if user.role != "admin":
        return error(403, NOT_ADMIN, request)
    db: Database = request.app.state.db
    summaries = await db.organisations.summaries()
    networks = sorted({s.organisation.network for s in summaries if s.organisation.network})
    return render(
        request, "organisations.html", status=status, summaries=summaries, networks=networks, message=message
    )


async def add_form(request: Request) -> Response:
    if current_user(request).role != "admin":
        return error(403, NOT_ADMIN, request)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    try:
        await add(
            request.app.state.db,
            current_user(request),
            form.get("name"),
            form.get("network"),
            client_address(request),
        )
    except Refused as exc:
        return await page(request, message=str(exc), status=exc.status)
    return RedirectResponse("/admin/organisations", status_code=303)


async def change_form(request: Request) -> Response:
    if current_user(request).role != "admin":
        return error(403, NOT_ADMIN, request)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    org_id = _org_id(request)
    changes = {key: form.get(key) for key in ("name", "network") if key in form}
    try:
        await change(
            request.app.state.db, current_user(request), org_id or 0, changes, client_address(request)
        )
    except Refused as exc:
        return await page(request, message=str(exc), status=exc.status)
    return RedirectResponse("/admin/organisations", status_code=303)


def _org_id(request: Request) -> int | None:
    raw = request.path_params["org_id"]
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


# -- the JSON twins --------------------------------------------------------------------

ORGANISATION = {
    "type": "object",
    "required": ["id", "name", "network"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "network": {"type": ["string", "null"]},
        "people": {"type": "integer"},
        "cases": {"type": "integer"},
    },
}
CHANGES = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "network": {"type": ["string", "null"]}},
}


async def list_json(request: Request) -> Response:
    if current_user(request).role != "admin":
        return problem(403, NOT_ADMIN)
    summaries = await request.app.state.db.organisations.summaries()
    return JSONResponse([_org_json(s.organisation, s.people, s.cases) for s in summaries])


async def add_json(request: Request) -> Response:
    if current_user(request).role != "admin":
        return problem(403, NOT_ADMIN)
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    try:
        org = await add(
            request.app.state.db,
            current_user(request),
            body.get("name"),
            body.get("network"),
            client_address(request),
        )
    except Refused as exc:
        return problem(exc.status, str(exc))
    return JSONResponse(_org_json(org), status_code=201)


async def change_json(request: Request) -> Response:
    if current_user(request).role != "admin":
        return problem(403, NOT_ADMIN)
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    org_id = _org_id(request)
    if org_id is None:
        return problem(404, "No such trust.")
    unknown = sorted(set(body) - {"name", "network"})
    if unknown:
        return problem(422, f"Only name and network can be changed, not {', '.join(unknown)}.")
    try:
        org = await change(request.app.state.db, current_user(request), org_id, body, client_address(request))
    except Refused as exc:
        return problem(exc.status, str(exc))
    return JSONResponse(_org_json(org))


describe(
    "/api/admin/organisations",
    "get",
    "Every trust with its network and how many people and cases it has (administrators)",
    response={"type": "array", "items": ORGANISATION},
    tag="administration",
)
describe(
    "/api/admin/organisations",
    "post",
    "Add a trust, in a network or none (administrators)",
    body={"type": "object", "required": ["name"], "properties": CHANGES["properties"]},
    response=ORGANISATION,
    status=201,
    tag="administration",
)
describe(
    "/api/admin/organisations/{org_id}",
    "patch",
    "Rename a trust or move it to another network (administrators)",
    body=CHANGES,
    response=ORGANISATION,
    tag="administration",
)

routes = [
    Route("/admin/organisations", page, methods=["GET"]),
    Route("/admin/organisations", add_form, methods=["POST"]),
    Route("/admin/organisations/{org_id}", change_form, methods=["POST"]),
    Route("/api/admin/organisations", list_json, methods=["GET"]),
    Route("/api/admin/organisations", add_json, methods=["POST"]),
    Route("/api/admin/organisations/{org_id}", change_json, methods=["PATCH"]),
]
