"""The audit log for administrators: a page, and JSON or CSV."""

from __future__ import annotations

import dataclasses

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.domain import may_read_audit
from collab.store import Database
from collab.store.audit import EVENTS, AuditEntry
from collab.web.api import describe
from collab.web.auth import current_user
from collab.web.csvsafe import csv_text
from collab.web.errors import error
from collab.web.render import render

FIELDS = [f.name for f in dataclasses.fields(AuditEntry)]


async def _entries(request: Request) -> list[dict[str, object]] | Response:
    if not may_read_audit(current_user(request)):
        return error(403, "Only administrators read the audit log.", request)
    event = request.query_params.get("event") or None
    if event is not None and event not in EVENTS:
        return error(400, f"event must be one of: {', '.join(EVENTS)}", request)
    raw_limit = request.query_params.get("limit", "1000")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100_000:
        return error(400, "limit must be a whole number from 1 to 100000", request)
    db: Database = request.app.state.db
    return [dataclasses.asdict(e) for e in await db.audit.entries(limit=int(raw_limit), event=event)]


async def audit_json(request: Request) -> Response:
    """``GET /api/audit[?format=csv][&event=...][&limit=N]``"""
    entries = await _entries(request)
    if isinstance(entries, Response):
        return entries
    if request.query_params.get("format") == "csv":
        return Response(
            csv_text(FIELDS, ([entry[field] for field in FIELDS] for entry in entries)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="collab-audit.csv"'},
        )
    return JSONResponse({"entries": entries})


async def audit_page(request: Request) -> Response:
    """``GET /admin/audit[?person=USERNAME][&action=EVENT][&case=ACCESSION][&from=DATE][&to=DATE]``:
    people and cases by name (the JSON and CSV keep the ids)."""
    entries = await _entries(request)
    if isinstance(entries, Response):
        return entries
    db: Database = request.app.state.db
    q = {k: request.query_params.get(k, "").strip()[:100] for k in ("person", "action", "case", "from", "to")}
    names = {
        row["id"]: f"{row['display_name']} ({row['username']})" for row in await db.all("SELECT * FROM users")
    }
    cases = {row["id"]: row["accession"] for row in await db.all("SELECT id, accession FROM cases")}
    shown = []
    for e in entries:
        e["who"] = names.get(e["user_id"], e["username"] or "")  # type: ignore[call-overload]
        e["accession"] = cases.get(e["case_id"], e["case_id"] or "")  # type: ignore[call-overload]
        detail = str(e["detail"] or "")
        if detail.startswith("user ") and detail[5:].split(":")[0].isdigit():
            target = int(detail[5:].split(":")[0])
            detail = names.get(target, f"user {target}") + detail[5 + len(str(target)) :]
        e["detail_text"] = detail
        if q["person"] and q["person"].lower() not in f"{e['who']} {detail}".lower():
            continue
        if q["action"] and e["event"] != q["action"]:
            continue
        if q["case"] and q["case"].lower() != str(e["accession"]).lower():
            continue
        if (q["from"] and str(e["at"])[:10] < q["from"]) or (q["to"] and str(e["at"])[:10] > q["to"]):
            continue
        shown.append(e)
    return render(request, "audit.html", entries=shown, events=EVENTS, q=q)


describe(
    "/api/audit",
    "get",
    "The audit trail (administrators): who did what, to which case, when",
    response={"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array"}}},
    tag="administration",
)

routes = [Route("/api/audit", audit_json), Route("/admin/audit", audit_page)]
