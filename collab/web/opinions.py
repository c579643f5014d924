"""Second opinions on the web: asking, the requestee's steps, and the lists pages show."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.domain import Access, Case, OpinionRequest, User, case_title, may_share
from collab.opinions import (
    STEPS,
    Invalid,
    NotAllowed,
    OpinionRefused,
    actions,
    may_see,
    request_opinion,
    take_step,
)
from collab.store import Database
from collab.web.access import AccessControl
from collab.web.api import describe
from collab.web.auth import checked_form, client_address, current_user
from collab.web.errors import error
from collab.web.sync import drop_lost_peers

# Where each step leads. Accepting opens the case (and its live session) in one click; the
# requestee goes back to the worklist after declining or answering, as the case is closed to them.
AFTER = {
    "accept": "/cases/{case_id}",
    "decline": "/",
    "answer": "/",
    "withdraw": "/cases/{case_id}#opinions",
}


class _Names:
    """People and organisations by id, each looked up once per request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._users: dict[int, User | None] = {}
        self._orgs: dict[int, str | None] = {}

    async def user(self, user_id: int | None) -> User | None:
        if user_id is None:
            return None
        if user_id not in self._users:
            self._users[user_id] = await self.db.people.user(user_id)
        return self._users[user_id]

    async def name(self, user_id: int | None) -> str | None:
        found = await self.user(user_id)
        return found.display_name if found else None

    async def org(self, org_id: int | None) -> str | None:
        if org_id is None:
            return None
        if org_id not in self._orgs:
            found = await self.db.catalog.org(org_id)
            self._orgs[org_id] = found.name if found else None
        return self._orgs[org_id]


async def _describe(
    names: _Names, request: OpinionRequest, user: User, case: Case, access: Access | None
) -> dict[str, Any]:
    """A request as pages and JSON show it to ``user``; ``access`` None: they no longer see the case."""
    requester = await names.user(request.requested_by)
    to_user = await names.user(request.to_user)
    return {
        "id": request.id,
        # Once the case is closed to them, it is named as in an anonymised view.
        "case": {"id": case.id, "title": case_title(case, access or Access(False, False))},
        "can_open_case": access is not None,
        "question": request.question,
        "urgent": request.urgent,
        "state": request.state,
        "from": {
            "name": requester.display_name if requester else None,
            "organisation": await names.org(requester.org_id) if requester else None,
        },
        "to": {
            "user": to_user.display_name if to_user else None,
            "username": to_user.username if to_user else None,
            "organisation": await names.org(to_user.org_id if to_user else request.to_org),
        },
        "to_organisation": request.to_org is not None,
        "accepted_by": await names.name(request.accepted_by),
        "answered_by": await names.name(request.answered_by),
        "opinion": request.opinion,
        "created": request.created,
        "updated": request.updated,
        "actions": actions(user, request),
    }


async def _describe_all(request: Request, found: list[OpinionRequest]) -> list[dict[str, Any]]:
    db: Database = request.app.state.db
    access_control: AccessControl = request.app.state.access
    user = current_user(request)
    names = _Names(db)
    described = []
    for item in found:
        case = await db.catalog.case(item.case_id)
        if case is None:
            continue
        seen = await access_control.case(request, case.id)
        described.append(await _describe(names, item, user, case, seen[1] if seen else None))
    return described


async def asked_of_me(request: Request, *, open_only: bool = True) -> list[dict[str, Any]]:
    """Requests asked of the signed-in person or of their organisation: urgent first, then oldest."""
    db: Database = request.app.state.db
    user = current_user(request)
    org_id = user.org_id if user.role == "pathologist" else None  # only pathologists answer for it
    return await _describe_all(request, await db.opinions.asked_of(user.id, org_id, open_only=open_only))


async def of_case(request: Request, case: Case, access: Access) -> dict[str, Any]:
    """What the case page shows: the requests the person may see, and whether they may ask."""
    db: Database = request.app.state.db
    user = current_user(request)
    names = _Names(db)
    return {
        "opinions": [
            await _describe(names, item, user, case, access)
            for item in await db.opinions.of_case(case.id)
            if may_see(user, case, item)
        ],
        "may_request_opinion": may_share(user, case),
    }


def _refused(exc: OpinionRefused) -> Response:
    status = 403 if isinstance(exc, NotAllowed) else 400 if isinstance(exc, Invalid) else 409
    return error(status, str(exc))


async def ask(request: Request) -> Response:
    """``POST /cases/{case_id}/opinions``: ask a pathologist or an organisation for a second opinion."""
    db: Database = request.app.state.db
    access_control: AccessControl = request.app.state.access
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = await access_control.case(request, request.path_params["case_id"])
    if found is None:
        return error(404, "No such case.")
    case, _ = found
    user = current_user(request)
    if not may_share(user, case):
        return error(
            403, "Only pathologists and administrators of the owning organisation ask for a second opinion."
        )
    target = str(form.get("to", "")).strip()
    person = await db.people.findable(user, target) if target else None
    org = None if person or not target else await db.catalog.org_by_name(target)
    if target and person is None and org is None:
        return error(400, f"No pathologist or organisation is called {target!r}.")
    try:
        await request_opinion(
            db,
            case,
            by=user,
            person=person,
            org=org,
            question=str(form.get("question", "")),
            urgent=bool(form.get("urgent")),
            client=client_address(request),
        )
    except OpinionRefused as exc:
        return _refused(exc)
    access_control.forget(case.id)
    return RedirectResponse(f"/cases/{case.id}#opinions", status_code=303)


async def step(request: Request) -> Response:
    """``POST /opinions/{id}/accept|decline|answer|withdraw``"""
    db: Database = request.app.state.db
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    action = request.path_params["action"]
    found = await db.opinions.get(request.path_params["request_id"])
    case = await db.catalog.case(found.case_id) if found else None
    user = current_user(request)
    # Someone with no part in a request is not told that it exists.
    if action not in STEPS or found is None or case is None or not may_see(user, case, found):
        return error(404, "No such request.")
    try:
        moved = await take_step(
            db, found, action, by=user, opinion=str(form.get("opinion", "")), client=client_address(request)
        )
    except OpinionRefused as exc:
        return _refused(exc)
    request.app.state.access.forget(case.id)
    if not moved.open:
        await drop_lost_peers(request.app, case.id)
    return RedirectResponse(AFTER[action].format(case_id=case.id), status_code=303)


async def opinions_json(request: Request) -> Response:
    """``GET /api/opinions``: requests asked of me (or my organisation), and those I asked."""
    db: Database = request.app.state.db
    user = current_user(request)
    return JSONResponse(
        {
            "to_me": await asked_of_me(request, open_only=False),
            "by_me": await _describe_all(request, await db.opinions.asked_by(user.id)),
        }
    )


describe(
    "/api/opinions",
    "get",
    "Second-opinion requests the caller asked or was asked",
    response={
        "type": "object",
        "required": ["to_me", "by_me"],
        "properties": {"to_me": {"type": "array"}, "by_me": {"type": "array"}},
    },
    tag="opinions",
)

routes = [
    Route("/cases/{case_id}/opinions", ask, methods=["POST"]),
    Route("/opinions/{request_id:int}/{action}", step, methods=["POST"]),
    Route("/api/opinions", opinions_json),
]
