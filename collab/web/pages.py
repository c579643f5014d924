"""The worklist and case pages, each with a JSON twin, and case sharing."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.domain import (
    OPINION_SOURCE,
    PRIORITIES,
    STATUSES,
    Access,
    Case,
    case_title,
    may_moderate,
    may_share,
)
from collab.sharing import share_case
from collab.store import Database
from collab.web.access import AccessControl
from collab.web.auth import checked_form, client_address, current_user
from collab.web.cases import SORT_LABELS, case_work
from collab.web.errors import error
from collab.web.meetings import meeting_mode
from collab.web.opinions import of_case
from collab.web.pacs import may_search, pacs_for
from collab.web.render import render
from collab.web.sync import chairs_meeting_on, drop_lost_peers
from collab.web.worklist import worklist_data


def case_summary(case: Case, access: Access, slide_ids: list[str], names: dict[int, str]) -> dict[str, Any]:
    """What a list or a page shows of a case; identifiers only for those who may see them."""
    summary: dict[str, Any] = {
        "id": case.id,
        "priority": case.priority,
        "status": case.status,
        "created": case.created,
        "organisation": names.get(-case.org_id),
        "assigned_to": names.get(case.assigned_to) if case.assigned_to else None,
        "specimen": case.specimen,
        "access": "contribute" if access.contribute else "read",
        "slides": [{"id": s, "thumbnail": f"/slides/{s}/thumbnail.jpeg"} for s in slide_ids],
        "title": case_title(case, access),
    }
    if access.identified:
        summary |= {
            "accession": case.accession,
            "clinical_details": case.clinical_details,
            "patient": {
                "name": case.patient.name,
                "nhs_number": case.patient.nhs_number,
                "date_of_birth": case.patient.date_of_birth,
            },
        }
    return summary


async def display_names(db: Database) -> dict[int, str]:
    """Display names by user id, organisation names by negative id (for summaries)."""
    users = {r["id"]: r["display_name"] for r in await db.all("SELECT id, display_name FROM users")}
    orgs = {-r["id"]: r["name"] for r in await db.all("SELECT id, name FROM organisations")}
    return users | orgs


async def worklist(request: Request) -> Response:
    """``GET /``: the cases this person may see, urgent first, oldest first within a priority."""
    data = await worklist_data(request)
    if isinstance(data, Response):
        return data
    return render(
        request, "index.html", data=data, priorities=PRIORITIES, statuses=STATUSES, sorts=SORT_LABELS
    )


async def worklist_json(request: Request) -> Response:
    """``GET /api/worklist``: the worklist's JSON twin (same filters)."""
    data = await worklist_data(request)
    return data if isinstance(data, Response) else JSONResponse(data)


async def _case_data(request: Request) -> tuple[dict[str, Any], Case, Access] | None:
    db: Database = request.app.state.db
    access_control: AccessControl = request.app.state.access
    found = await access_control.case(request, request.path_params["case_id"])
    if found is None:
        return None
    case, access = found
    user = current_user(request)
    slides = await db.catalog.slides_of_case(case.id)
    data = case_summary(case, access, [s.id for s in slides], await display_names(db))
    for entry, record in zip(data["slides"], slides, strict=True):
        entry |= {"stain": record.stain, "width": record.width, "height": record.height}
        if access.identified:
            entry["label"] = f"/slides/{record.id}/associated/label.jpeg"
    if may_share(user, case):
        data["shares"] = [
            {
                "id": s.id,
                "user": await _username(db, s.user_id),
                "organisation": await _org_name(db, s.org_id),
                "contributing": s.contributing,
                # Made for a second opinion: it ends with the request, not by hand.
                "for_opinion": (s.source or "").startswith(OPINION_SOURCE),
            }
            for s in await db.catalog.shares(case.id)
        ]
    data |= await of_case(request, case, access)
    data |= await case_work(request, case, access)  # notes, status steps, edit rights
    # Whether the live room lets them present (collab.sync.presence); the viewer says why not.
    data["may_present"] = access.contribute or await chairs_meeting_on(db, user.id, case.id)
    data["pacs_search"] = may_search(user, case, access) and bool(await pacs_for(request, user))
    await db.audit.record("case opened", user=user, client=client_address(request), case_id=case.id)
    return data, case, access


async def _username(db: Database, user_id: int | None) -> str | None:
    found = await db.people.user(user_id) if user_id is not None else None
    return found.username if found else None


async def _org_name(db: Database, org_id: int | None) -> str | None:
    found = await db.catalog.org(org_id) if org_id is not None else None
    return found.name if found else None


async def case_page(request: Request) -> Response:
    """``GET /cases/{case_id}``: the case, its slides in a viewer."""
    found = await _case_data(request)
    if found is None:
        return await request.app.state.access.refusal(request, request.path_params["case_id"])
    data, case, access = found
    wanted = request.query_params.get("slide")
    current = next(
        (s for s in data["slides"] if s["id"] == wanted), data["slides"][0] if data["slides"] else None
    )
    if current:
        request.app.state.slides.prefetch(current["id"])  # opens while the browser loads the viewer
    user = current_user(request)
    organisation = await _org_name(request.app.state.db, user.org_id)
    session = {
        "caseId": case.id,
        "user": {"id": user.id, "name": user.display_name, "role": user.role, "organisation": organisation},
        "rights": {
            "contribute": access.contribute,
            "discuss": access.discuss,
            "identified": access.identified,  # label and macro images are theirs to see
            "moderate": access.contribute and may_moderate(user, case),
            "present": data["may_present"],
        },
        "slides": [{"id": s["id"], "stain": s.get("stain")} for s in data["slides"]],
        "current": current["id"] if current else None,
        # Opened in a meeting room: the chair presents, everyone else follows (None otherwise).
        "meeting": await meeting_mode(request, case.id),
    }
    return render(request, "case.html", case=data, current=current, access=access, session=session)


async def case_json(request: Request) -> Response:
    """``GET /api/cases/{case_id}``: the case page's JSON twin."""
    found = await _case_data(request)
    if found is None:
        return await request.app.state.access.refusal(request, request.path_params["case_id"], api=True)
    return JSONResponse(found[0])


async def _sharing_form(request: Request) -> tuple[Any, Case] | Response:
    """The posted form and its case, if the form is genuine and its sender may share the case."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = await request.app.state.access.case(request, request.path_params["case_id"])
    if found is None:
        return error(404, "No such case.")
    case, _ = found
    if not may_share(current_user(request), case):
        return error(403, "Only pathologists and administrators of the owning organisation share a case.")
    return form, case


async def share_form(request: Request) -> Response:
    """``POST /cases/{case_id}/shares``: open the case to a person or an organisation."""
    db: Database = request.app.state.db
    checked = await _sharing_form(request)
    if isinstance(checked, Response):
        return checked
    form, case = checked
    user = current_user(request)
    target = str(form.get("with", "")).strip()
    contributing = form.get("access") == "contribute"
    person = await db.people.findable(user, target)
    org = None if person else await db.catalog.org_by_name(target)
    if person is None and org is None:
        return error(400, f"No user or organisation is called {target!r}.")
    await share_case(
        db, case, person=person, org=org, contributing=contributing, by=user, client=client_address(request)
    )
    request.app.state.access.forget(case.id)
    await drop_lost_peers(request.app, case.id)  # a share made read-only over a contributing one
    return RedirectResponse(f"/cases/{case.id}", status_code=303)


async def revoke_share(request: Request) -> Response:
    """``POST /cases/{case_id}/shares/{share_id}/revoke``"""
    db: Database = request.app.state.db
    checked = await _sharing_form(request)
    if isinstance(checked, Response):
        return checked
    _, case = checked
    user = current_user(request)
    raw = request.path_params["share_id"]
    shares = {s.id: s for s in await db.catalog.shares(case.id)}
    if not raw.isdigit() or int(raw) not in shares:
        return error(404, "No such share.")
    if shares[int(raw)].source:
        return error(409, "This share belongs to a second-opinion request: withdraw the request instead.")
    await db.catalog.revoke(int(raw))
    await db.audit.record(
        "share revoked", user=user, client=client_address(request), case_id=case.id, detail=f"share {raw}"
    )
    request.app.state.access.forget(case.id)
    await drop_lost_peers(request.app, case.id)
    return RedirectResponse(f"/cases/{case.id}", status_code=303)


routes = [
    Route("/", worklist),
    Route("/api/worklist", worklist_json),
    Route("/cases/{case_id}", case_page),
    Route("/api/cases/{case_id}", case_json),
    Route("/cases/{case_id}/shares", share_form, methods=["POST"]),
    Route("/cases/{case_id}/shares/{share_id}/revoke", revoke_share, methods=["POST"]),
]
