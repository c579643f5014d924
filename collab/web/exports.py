"""``GET /api/cases/{case_id}/annotations.geojson``: the case's annotations for QuPath and other tools."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.sync.export import annotations_geojson


async def annotations_export(request: Request) -> Response:
    """The annotations as GeoJSON in level-0 pixels; ``?slide=ID`` keeps one slide's."""
    found = await request.app.state.access.case(request, request.path_params["case_id"])
    if found is None:
        return await request.app.state.access.refusal(request, request.path_params["case_id"], api=True)
    case, _ = found
    doc = await request.app.state.rooms.document(case.id)
    collection = annotations_geojson(doc, request.query_params.get("slide") or None)
    return JSONResponse(collection, media_type="application/geo+json")


routes = [Route("/api/cases/{case_id}/annotations.geojson", annotations_export)]
