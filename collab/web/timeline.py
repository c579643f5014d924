"""``GET /api/cases/{case_id}/timeline``: the presenter's path and when annotations were made.

The case page replays it for anyone who joined late or re-opens the case after a meeting.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Map
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.store import Database
from collab.web.api import describe
from collab.web.auth import client_address, current_user


async def timeline(request: Request) -> Response:
    """Path samples (oldest first, with the presenter's name) and annotation creations, by time."""
    found = await request.app.state.access.case(request, request.path_params["case_id"])
    if found is None:
        return await request.app.state.access.refusal(request, request.path_params["case_id"], api=True)
    case, _ = found
    db: Database = request.app.state.db
    names: dict[int, str] = {}
    path = []
    for sample in await db.documents.path(case.id):
        user_id = int(sample["user_id"])  # type: ignore[call-overload]
        if user_id not in names:
            user = await db.people.user(user_id)
            names[user_id] = user.display_name if user else "someone"
        path.append({**sample, "name": names[user_id]})
    doc = await request.app.state.rooms.document(case.id)
    await db.audit.record(
        "timeline viewed", user=current_user(request), client=client_address(request), case_id=case.id
    )
    return JSONResponse({"path": path, "annotations": _annotations(doc)})


def _annotations(doc: Any) -> list[dict[str, Any]]:
    if "annotations" not in set(doc.keys()):
        return []
    made = []
    for key, value in (doc.get("annotations", type=Map).to_py() or {}).items():
        if not isinstance(value, dict) or not isinstance(value.get("created"), str):
            continue
        made.append(
            {
                "id": key,
                "created": value["created"],
                "slide": value.get("slide"),
                "kind": value.get("kind"),
                "label": str(value.get("label") or ""),
                "authorName": str(value.get("authorName") or ""),
            }
        )
    return sorted(made, key=lambda a: a["created"])


describe(
    "/api/cases/{case_id}/timeline",
    "get",
    "The presenter's path through a case's slides, and its annotations, for replay",
    response={
        "type": "object",
        "required": ["path", "annotations"],
        "properties": {"path": {"type": "array"}, "annotations": {"type": "array"}},
    },
    tag="cases",
)

routes = [Route("/api/cases/{case_id}/timeline", timeline)]
