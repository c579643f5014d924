"""The worklist's data: a page of cases, searched, sorted and counted (collab.store.worklist),
shown as the worklist page (``/``) and its JSON twin (``/api/worklist``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from collab.domain import PRIORITIES, STATUSES
from collab.store import Database
from collab.store.analyses import OpenFlag, ToolScore
from collab.store.worklist import SORTS, WorklistQuery, worklist_counts, worklist_page
from collab.web.access import anonymised
from collab.web.auth import current_user
from collab.web.errors import error
from collab.web.meetings import my_meetings
from collab.web.opinions import asked_of_me

PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_QUERY = 100


def _number(raw: str | None, default: int, *, lowest: int, highest: int) -> int | None:
    if raw is None or raw == "":
        return default
    return int(raw) if raw.isdigit() and lowest <= int(raw) <= highest else None


def worklist_query(request: Request) -> WorklistQuery | Response:
    """The worklist's query parameters, or the 4xx that says which one is wrong."""
    params = request.query_params
    user = current_user(request)
    page = _number(params.get("page"), 1, lowest=1, highest=1_000_000)
    per_page = _number(params.get("per_page"), PER_PAGE, lowest=1, highest=MAX_PER_PAGE)
    sort = params.get("sort") or "priority"
    q = params.get("q") or ""
    if page is None:
        return error(422, "page must be a whole number from 1.", request)
    if per_page is None:
        return error(422, f"per_page must be a whole number from 1 to {MAX_PER_PAGE}.", request)
    if sort not in SORTS:
        return error(422, f"sort must be one of: {', '.join(SORTS)}.", request)
    if len(q) > MAX_QUERY:
        return error(422, f"A search is at most {MAX_QUERY} characters.", request)
    return WorklistQuery(
        # Identifiers are searched only for those who see them, and never in an anonymised view.
        identified=user.role != "student" and not anonymised(request),
        q=q,
        status=params.get("status") or None,
        priority=params.get("priority") or None,
        assignee=params.get("assignee") or None,
        flagged=params.get("flags") == "open",
        sort=sort,
        page=page,
        per_page=per_page,
    )


def _without_case(item: OpenFlag | ToolScore) -> dict[str, Any]:
    """A flag or score as the worklist shows it: what, why, and which software said so."""
    return {key: value for key, value in asdict(item).items() if key != "case_id"}


def _summary(row: dict[str, Any], identified: bool) -> dict[str, Any]:
    """A row as collab.web.pages.case_summary shows a case; identifiers only if ``identified``."""
    slide_ids = row["slide_ids"].split(",") if row["slide_ids"] else []
    summary: dict[str, Any] = {
        "id": row["id"],
        "priority": row["priority"],
        "status": row["status"],
        "created": row["created"],
        "organisation": row["org_name"],
        "assigned_to": row["assignee_name"],
        "specimen": row["specimen"],
        "access": "contribute" if row["contribute"] else "read",
        "slides": [{"id": s, "thumbnail": f"/slides/{s}/thumbnail.jpeg"} for s in slide_ids],
        "title": row["accession"] if identified else f"Case {row['id'][:6]}",
    }
    if identified:
        summary |= {
            "accession": row["accession"],
            "clinical_details": row["clinical_details"],
            "patient": {
                "name": row["patient_name"],
                "nhs_number": row["nhs_number"],
                "date_of_birth": row["date_of_birth"],
            },
        }
    return summary


async def worklist_data(request: Request) -> dict[str, Any] | Response:
    """The worklist: one query for the page of cases, one for the counts."""
    db: Database = request.app.state.db
    user = current_user(request)
    query = worklist_query(request)
    if isinstance(query, Response):
        return query
    rows, matched = await worklist_page(db, user, query)
    pages = max(1, -(-matched // query.per_page))
    flags = await db.analyses.open_flags([r["id"] for r in rows])
    scores = await db.analyses.tool_scores([r["id"] for r in rows])
    cases = [_summary(r, query.identified) for r in rows]
    for case in cases:
        case["flags"] = [_without_case(f) for f in flags.get(case["id"], [])]
        case["scores"] = [_without_case(s) for s in scores.get(case["id"], [])]
    return {
        "user": {"username": user.username, "name": user.display_name, "role": user.role},
        # Second opinions asked of this person come first, whatever the filters.
        "opinions": await asked_of_me(request),
        "meetings": await my_meetings(request),
        "filters": {
            "status": query.status,
            "priority": query.priority,
            "assignee": query.assignee,
            "q": query.q,
            "sort": query.sort,
            "flags": "open" if query.flagged else None,
        },
        "counts": await worklist_counts(db, user),
        "shown": matched,
        "page": query.page,
        "per_page": query.per_page,
        "pages": pages,
        "cases": cases,
    }


WORKLIST_QUERY: dict[str, dict[str, Any]] = {
    "q": {"type": "string", "maxLength": MAX_QUERY, "description": "accession, patient name or NHS number"},
    "sort": {"enum": list(SORTS), "default": "priority"},
    "page": {"type": "integer", "minimum": 1, "default": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": PER_PAGE},
    "status": {"enum": list(STATUSES)},
    "priority": {"enum": list(PRIORITIES)},
    "assignee": {"type": "string", "description": "me, none, or a display name"},
    "flags": {"enum": ["open"], "description": "only cases with an analysis flag still to review"},
}
