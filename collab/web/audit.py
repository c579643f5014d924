"""The audit log for administrators: a page, and JSON or CSV."""

from __future__ import annotations

import dataclasses

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.domain import may_read_audit
from collab.store import Database
from collab.store.audit import EVENTS, AuditEntry
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
    """``GET /admin/audit``"""
    entries = await _entries(request)
    if isinstance(entries, Response):
        return entries
    return render(request, "audit.html", entries=entries, events=EVENTS)


routes = [Route("/api/audit", audit_json), Route("/admin/audit", audit_page)]
