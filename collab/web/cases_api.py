"""The JSON twins of the case pages (collab.web.cases): same acts, same rights, same audit;
and the descriptions of the worklist and case reads (collab.web.pages)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.cases import CaseFields, CaseRefused, add_note, change_status, create_case, edit_case
from collab.domain import PRIORITIES, STATUSES, Case, may_manage_cases
from collab.store import Database
from collab.store.worklist import SORTS
from collab.web.api import describe, read_json
from collab.web.auth import client_address, current_user
from collab.web.errors import problem
from collab.web.worklist import WORKLIST_QUERY

NULLABLE_TEXT = {"type": ["string", "null"]}
PATIENT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"name": NULLABLE_TEXT, "nhs_number": NULLABLE_TEXT, "date_of_birth": NULLABLE_TEXT},
}
CASE_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "priority", "status", "created", "access", "slides", "title"],
    "properties": {
        "id": {"type": "string"},
        "title": {
            "type": "string",
            "description": "the accession, or 'Case …' for those who see no identifiers",
        },
        "priority": {"enum": list(PRIORITIES)},
        "status": {"enum": list(STATUSES)},
        "created": {"type": "string"},
        "organisation": NULLABLE_TEXT,
        "assigned_to": NULLABLE_TEXT,
        "specimen": NULLABLE_TEXT,
        "access": {"enum": ["contribute", "read"]},
        "slides": {"type": "array", "items": {"type": "object"}},
        "flags": {
            "type": "array",
            "items": {"type": "object"},
            "description": "on the worklist: analysis flags still to review (decision support), each with"
            " its name, reason, analysis, version and source",
        },
        "scores": {
            "type": "array",
            "items": {"type": "object"},
            "description": "on the worklist: scores outside tools posted for the case's slides (their newest"
            " results), each with its name, value, slide_id, analysis, version and source",
        },
        "accession": {"type": "string", "description": "only for those who see identifiers"},
        "clinical_details": NULLABLE_TEXT,
        "patient": PATIENT,
    },
}
COUNTS = {"type": "object", "properties": {"total": {"type": "integer"}}}
WORKLIST = {
    "type": "object",
    "required": ["cases", "counts", "shown", "page", "per_page", "pages"],
    "properties": {
        "cases": {"type": "array", "items": CASE_SUMMARY},
        "counts": COUNTS,
        "shown": {"type": "integer", "description": "how many cases match the search and filters"},
        "page": {"type": "integer"},
        "per_page": {"type": "integer"},
        "pages": {"type": "integer"},
        "filters": {"type": "object"},
        "opinions": {"type": "array"},
        "meetings": {"type": "array"},
    },
}
NOTE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "author", "created", "body"],
    "properties": {
        "id": {"type": "integer"},
        "author": {"type": "string"},
        "created": {"type": "string"},
        "body": {"type": "string"},
    },
}
CASE: dict[str, Any] = {
    **CASE_SUMMARY,
    "properties": {
        **CASE_SUMMARY["properties"],
        "may_edit": {"type": "boolean"},
        "status_steps": {"type": "array", "items": {"enum": list(STATUSES)}},
        "may_add_note": {"type": "boolean"},
        "notes": {"type": "array", "items": NOTE},
    },
}
EDITABLE = {
    "priority": {"enum": list(PRIORITIES)},
    "patient": PATIENT,
    "specimen": NULLABLE_TEXT,
    "clinical_details": NULLABLE_TEXT,
}
NEW_CASE = {
    "type": "object",
    "required": ["accession"],
    "additionalProperties": False,
    "properties": {
        "accession": {"type": "string"},
        "organisation": {"type": "string", "description": "the trust's name; the caller's by default"},
        **EDITABLE,
    },
}
CHANGES = {"type": "object", "additionalProperties": False, "properties": EDITABLE}
MADE = {
    "type": "object",
    "required": ["id", "accession", "priority", "status", "url"],
    "properties": {
        "id": {"type": "string"},
        "accession": {"type": "string"},
        "priority": {"enum": list(PRIORITIES)},
        "status": {"enum": list(STATUSES)},
        "url": {"type": "string"},
    },
}
STATUS_BODY = {
    "type": "object",
    "required": ["status"],
    "additionalProperties": False,
    "properties": {"status": {"enum": list(STATUSES)}},
}
NOTE_BODY = {
    "type": "object",
    "required": ["body"],
    "additionalProperties": False,
    "properties": {"body": {"type": "string"}},
}


class _BadBody(Exception):
    pass


def _text(body: dict[str, Any], name: str, current: str | None) -> str:
    value = body.get(name, current)
    if value is not None and not isinstance(value, str):
        raise _BadBody(f"{name} must be a string or null.")
    return value or ""


def _fields(body: dict[str, Any], base: Case | None) -> CaseFields:
    """The fields of a JSON body over a case's current ones (none: a new case)."""
    allowed = set(EDITABLE) | ({"accession", "organisation"} if base is None else set())
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _BadBody(f"Unknown field: {unknown[0]}. Known: {', '.join(sorted(allowed))}.")
    patient = body.get("patient", {})
    if not isinstance(patient, dict) or set(patient) - set(PATIENT["properties"]):
        raise _BadBody("patient must be an object of name, nhs_number and date_of_birth.")
    current = base.patient if base else None
    return CaseFields(
        _text(body, "priority", base.priority if base else "routine"),
        _text(patient, "name", current.name if current else None),
        _text(patient, "nhs_number", current.nhs_number if current else None),
        _text(patient, "date_of_birth", current.date_of_birth if current else None),
        _text(body, "specimen", base.specimen if base else None),
        _text(body, "clinical_details", base.clinical_details if base else None),
    )


def _made(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "accession": case.accession,
        "priority": case.priority,
        "status": case.status,
        "url": f"/cases/{case.id}",
    }


async def create_json(request: Request) -> Response:
    """``POST /api/cases``: create a case of the caller's trust."""
    db: Database = request.app.state.db
    user = current_user(request)
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    try:
        if not isinstance(body.get("accession"), str):
            raise _BadBody("accession is required, as a string.")
        fields = _fields(body, None)
        org = await db.catalog.org(user.org_id)
        assert org is not None
        named = body.get("organisation", org.name)
        if named != org.name:
            # Another trust's name: refused alike whether it exists or not.
            return problem(403, f"You may create cases for {org.name} only.")
        case = await create_case(db, body["accession"], org, fields, by=user, client=client_address(request))
    except _BadBody as exc:
        return problem(422, str(exc))
    except CaseRefused as exc:
        return problem(exc.status, str(exc))
    return JSONResponse(_made(case), status_code=201)


async def _case(request: Request) -> tuple[Case, bool, bool] | Response:
    """The case, whether the caller contributes, and whether they see identifiers."""
    found = await request.app.state.access.case(request, request.path_params["case_id"])
    if found is None:
        return await request.app.state.access.refusal(request, request.path_params["case_id"], api=True)
    case, access = found
    return case, access.contribute, access.identified


async def edit_json(request: Request) -> Response:
    """``PATCH /api/cases/{case_id}``: change priority, patient, specimen or clinical details."""
    found = await _case(request)
    if isinstance(found, Response):
        return found
    case, _, identified = found
    user = current_user(request)
    if not may_manage_cases(user, case.org_id) or not identified:
        return problem(403, "Only pathologists and administrators of the case's trust edit it.")
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    try:
        changed = await edit_case(
            request.app.state.db, case, _fields(body, case), by=user, client=client_address(request)
        )
    except _BadBody as exc:
        return problem(422, str(exc))
    except CaseRefused as exc:
        return problem(exc.status, str(exc))
    request.app.state.access.forget(case.id)
    return JSONResponse({"id": case.id, "changed": changed})


async def status_json(request: Request) -> Response:
    """``POST /api/cases/{case_id}/status``: move the case one step along the workflow."""
    found = await _case(request)
    if isinstance(found, Response):
        return found
    case = found[0]
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    if set(body) != {"status"} or not isinstance(body["status"], str):
        return problem(422, f'Send {{"status": ...}}, one of: {", ".join(STATUSES)}.')
    try:
        await change_status(
            request.app.state.db,
            case,
            body["status"],
            by=current_user(request),
            client=client_address(request),
        )
    except CaseRefused as exc:
        return problem(exc.status, str(exc))
    request.app.state.access.forget(case.id)
    return JSONResponse({"id": case.id, "status": body["status"]})


async def notes_json(request: Request) -> Response:
    """``GET /api/cases/{case_id}/notes`` lists the notes; ``POST`` adds one."""
    db: Database = request.app.state.db
    found = await _case(request)
    if isinstance(found, Response):
        return found
    case, contribute, identified = found
    if not identified:
        return problem(403, "Case notes may name the patient: they are not shown without identifiers.")
    if request.method == "POST":
        body = await read_json(request)
        if isinstance(body, Response):
            return body
        if set(body) != {"body"} or not isinstance(body["body"], str):
            return problem(422, 'Send {"body": "the note"}.')
        try:
            note_id = await add_note(
                db,
                case,
                body["body"],
                by=current_user(request),
                contribute=contribute,
                client=client_address(request),
            )
        except CaseRefused as exc:
            return problem(exc.status, str(exc))
        note = next(n for n in await db.case_notes.of_case(case.id) if n.id == note_id)
        return JSONResponse(
            {"id": note.id, "author": note.author_name, "created": note.created, "body": note.body},
            status_code=201,
        )
    notes = [
        {"id": n.id, "author": n.author_name, "created": n.created, "body": n.body}
        for n in await db.case_notes.of_case(case.id)
    ]
    return JSONResponse({"notes": notes})


describe(
    "/api/worklist",
    "get",
    "The worklist: a page of the cases the caller may see, searched, filtered and sorted"
    f" (sort: {', '.join(SORTS)}); identifiers are searched and shown only to those allowed",
    response=WORKLIST,
    query=WORKLIST_QUERY,
    tag="cases",
)
describe(
    "/api/cases/{case_id}",
    "get",
    "A case, its slides, shares, opinions and notes",
    response=CASE,
    tag="cases",
)
describe(
    "/api/cases",
    "post",
    "Create a case of the caller's trust",
    body=NEW_CASE,
    response=MADE,
    status=201,
    tag="cases",
)
describe(
    "/api/cases/{case_id}",
    "patch",
    "Change a case's priority, patient, specimen or clinical details",
    body=CHANGES,
    response={"type": "object", "properties": {"id": {"type": "string"}, "changed": {"type": "array"}}},
    tag="cases",
)
describe(
    "/api/cases/{case_id}/status",
    "post",
    "Move a case one step: new, in review, ready for MDT, reported (or back one step)",
    body=STATUS_BODY,
    response={"type": "object", "properties": {"id": {"type": "string"}, "status": {"enum": list(STATUSES)}}},
    tag="cases",
)
describe(
    "/api/cases/{case_id}/notes",
    "get",
    "A case's notes, oldest first (only for those who see identifiers)",
    response={
        "type": "object",
        "required": ["notes"],
        "properties": {"notes": {"type": "array", "items": NOTE}},
    },
    tag="cases",
)
describe(
    "/api/cases/{case_id}/notes",
    "post",
    "Add a note to a case",
    body=NOTE_BODY,
    response=NOTE,
    status=201,
    tag="cases",
)

routes = [
    Route("/api/cases", create_json, methods=["POST"]),
    Route("/api/cases/{case_id}", edit_json, methods=["PATCH"]),
    Route("/api/cases/{case_id}/status", status_json, methods=["POST"]),
    Route("/api/cases/{case_id}/notes", notes_json, methods=["GET", "POST"]),
]
