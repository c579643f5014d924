"""Cases in the browser and the API: create, edit, move along the workflow, add notes.

Every act is collab.cases' (the command line's too); this module only reads forms and JSON,
decides who sees what, and answers. Rights: pathologists and admins of the case's trust
create and change cases (collab.domain.may_manage_cases); whoever contributes to a case adds
notes; notes are shown only to those who see patient identifiers, since they may name them.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from collab.cases import CaseFields, CaseRefused, add_note, change_status, create_case, edit_case
from collab.domain import PRIORITIES, Access, Case, may_manage_cases, status_steps
from collab.store import Database
from collab.web.auth import checked_form, client_address, current_user
from collab.web.errors import error
from collab.web.render import render

SORT_LABELS = {
    "priority": "priority (urgent first)",
    "accession": "accession",
    "created": "newest",
    "status": "status",
    "flags": "analysis flags first",
    "score": "AI score (highest first)",
}
_FIELDS = ("priority", "patient_name", "nhs_number", "date_of_birth", "specimen", "clinical_details")


def _refusal(exc: CaseRefused, request: Request) -> Response:
    return error(exc.status, str(exc), request)


async def _found(request: Request) -> tuple[Case, Access] | Response:
    found = await request.app.state.access.case(request, request.path_params["case_id"])
    if found is None:
        return await request.app.state.access.refusal(request, request.path_params["case_id"])
    return found


async def case_work(request: Request, case: Case, access: Access) -> dict[str, Any]:
    """What the case page and its JSON twin add about working the case."""
    db: Database = request.app.state.db
    user = current_user(request)
    manages = may_manage_cases(user, case.org_id)
    work: dict[str, Any] = {
        "may_edit": manages,
        "status_steps": list(status_steps(case.status)) if manages else [],
        "may_add_note": access.contribute and access.identified,
    }
    if access.identified:
        work["notes"] = [
            {"id": n.id, "author": n.author_name, "created": n.created, "body": n.body}
            for n in await db.case_notes.of_case(case.id)
        ]
    return work


def _fields_from_form(form: Any) -> CaseFields:
    return CaseFields(*(str(form.get(name, "")) for name in _FIELDS))


def _form_values(case: Case) -> dict[str, str]:
    return {
        "priority": case.priority,
        "patient_name": case.patient.name or "",
        "nhs_number": case.patient.nhs_number or "",
        "date_of_birth": case.patient.date_of_birth or "",
        "specimen": case.specimen or "",
        "clinical_details": case.clinical_details or "",
    }


async def new_case_page(request: Request) -> Response:
    """``GET /cases/new`` and ``POST /cases/new``: the form, and the case it creates."""
    db: Database = request.app.state.db
    user = current_user(request)
    org = await db.catalog.org(user.org_id)
    assert org is not None
    if not may_manage_cases(user, org.id):
        return error(403, "Only pathologists and administrators create cases.", request)
    values: dict[str, str] = {"priority": "routine"}
    problem_text = None
    if request.method == "POST":
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        values = {name: str(form.get(name, "")) for name in ("accession", "trust", *_FIELDS)}
        try:
            if values["trust"] != str(org.id):
                raise CaseRefused(f"You may create cases for {org.name} only.", 403)
            case = await create_case(
                db, values["accession"], org, _fields_from_form(form), by=user, client=client_address(request)
            )
        except CaseRefused as exc:
            problem_text = str(exc)
        else:
            return RedirectResponse(f"/cases/{case.id}", status_code=303)
    return render(
        request,
        "case_new.html",
        status=422 if problem_text else 200,
        values=values,
        trusts=[org],
        priorities=PRIORITIES,
        problem=problem_text,
    )


async def edit_case_page(request: Request) -> Response:
    """``GET /cases/{case_id}/edit`` and ``POST``: priority, patient and specimen details."""
    found = await _found(request)
    if isinstance(found, Response):
        return found
    case, access = found
    user = current_user(request)
    if not may_manage_cases(user, case.org_id) or not access.identified:
        return error(403, "Only pathologists and administrators of the case's trust edit it.", request)
    values = _form_values(case)
    problem_text = None
    if request.method == "POST":
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        values = {name: str(form.get(name, "")) for name in _FIELDS}
        try:
            await edit_case(
                request.app.state.db, case, _fields_from_form(form), by=user, client=client_address(request)
            )
        except CaseRefused as exc:
            problem_text = str(exc)
        else:
            request.app.state.access.forget(case.id)
            return RedirectResponse(f"/cases/{case.id}", status_code=303)
    return render(
        request,
        "case_edit.html",
        status=422 if problem_text else 200,
        case=case,
        values=values,
        priorities=PRIORITIES,
        problem=problem_text,
    )


async def status_form(request: Request) -> Response:
    """``POST /cases/{case_id}/status``: move the case one step (form field ``status``)."""
    found = await _found(request)
    if isinstance(found, Response):
        return found
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    case, _ = found
    try:
        await change_status(
            request.app.state.db,
            case,
            str(form.get("status", "")),
            by=current_user(request),
            client=client_address(request),
        )
    except CaseRefused as exc:
        return _refusal(exc, request)
    request.app.state.access.forget(case.id)
    return RedirectResponse(f"/cases/{case.id}#work", status_code=303)


async def note_form(request: Request) -> Response:
    """``POST /cases/{case_id}/notes``: add a note (form field ``body``)."""
    found = await _found(request)
    if isinstance(found, Response):
        return found
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    case, access = found
    try:
        await add_note(
            request.app.state.db,
            case,
            str(form.get("body", "")),
            by=current_user(request),
            contribute=access.contribute and access.identified,
            client=client_address(request),
        )
    except CaseRefused as exc:
        return _refusal(exc, request)
    return RedirectResponse(f"/cases/{case.id}#notes", status_code=303)


routes = [
    Route("/cases/new", new_case_page, methods=["GET", "POST"]),
    Route("/cases/{case_id}/edit", edit_case_page, methods=["GET", "POST"]),
    Route("/cases/{case_id}/status", status_form, methods=["POST"]),
    Route("/cases/{case_id}/notes", note_form, methods=["POST"]),
]
