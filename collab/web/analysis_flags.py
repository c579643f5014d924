"""A pathologist confirms or dismisses an analysis flag from the worklist: ``POST
/analysis-flags/{flag_id}`` (form: ``review`` = ``confirmed`` or ``dismissed``; ``urgent`` to
make the case urgent as well). Software only ever suggests: a case's priority changes here
only because a person chose it, and both are audited."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from collab.store.database import Database
from collab.web.auth import checked_form, client_address, current_user
from collab.web.errors import error

REVIEWS = ("confirmed", "dismissed")


async def review(request: Request) -> Response:
    raw = request.path_params["flag_id"]
    db: Database = request.app.state.db
    flag = await db.analyses.flag(int(raw)) if raw.isdigit() and len(raw) < 12 else None
    found = await request.app.state.access.case(request, flag.case_id) if flag else None
    if flag is None or found is None:
        return error(404, "No such flag, or it has been reviewed already.", request)
    case, access = found
    user = current_user(request)
    if user.role != "pathologist" or not access.contribute:
        return error(403, "Only pathologists working on the case confirm or dismiss its flags.", request)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    decision = str(form.get("review", ""))
    if decision not in REVIEWS:
        return error(422, "Choose to confirm or to dismiss the flag.", request)
    if not await db.analyses.review_flag(flag.id, decision, by=user.id):
        return error(409, "Someone reviewed this flag a moment ago.", request)
    client = client_address(request)
    detail = f"{flag.name} ({flag.analysis} {flag.version}, {flag.source}): {flag.reason}"
    event = "analysis flag confirmed" if decision == "confirmed" else "analysis flag dismissed"
    await db.audit.record(
        event, user=user, client=client, case_id=case.id, slide_id=flag.slide_id, detail=detail
    )
    if decision == "confirmed" and form.get("urgent") == "on" and case.priority != "urgent":
        await db.catalog.set_priority(case.id, "urgent")
        request.app.state.access.forget(case.id)
        await db.audit.record(
            "case changed", user=user, client=client, case_id=case.id,
            detail=f"priority {case.priority} -> urgent, confirming the flag {flag.name!r}",
        )  # fmt: skip
    return RedirectResponse("/?flags=open" if form.get("from") == "flagged" else "/", status_code=303)


routes = [Route("/analysis-flags/{flag_id}", review, methods=["POST"])]
