"""``GET /api/cases/{case_id}/annotations.geojson``: the case's annotations for QuPath and other tools."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.store import Database
from collab.sync.export import annotations_geojson
from collab.web.api import describe
from collab.web.auth import client_address, current_user


async def annotations_export(request: Request) -> Response:
    """The annotations as GeoJSON in level-0 pixels; ``?slide=ID`` keeps one slide's."""
    found = await request.app.state.access.case(request, request.path_params["case_id"])
    if found is None:
        return await request.app.state.access.refusal(request, request.path_params["case_id"], api=True)
    case, _ = found
    db: Database = request.app.state.db
    slide = request.query_params.get("slide") or None
    doc = await request.app.state.rooms.document(case.id)
    collection = annotations_geojson(doc, slide)
    # The slide is recorded only if it is one of the case's: the query string is anyone's to write.
    slides = {record.id for record in await db.catalog.slides_of_case(case.id)}
    await db.audit.record(
        "annotations exported",
        user=current_user(request),
        client=client_address(request),
        case_id=case.id,
        slide_id=slide if slide in slides else None,
        detail=f"GeoJSON, {len(collection['features'])} features",
    )
    return JSONResponse(collection, media_type="application/geo+json")


describe(
    "/api/cases/{case_id}/annotations.geojson",
    "get",
    "A case's annotations as a GeoJSON FeatureCollection (slide pixel coordinates)",
    response={
        "type": "object",
        "required": ["type", "features"],
        "properties": {"type": {"const": "FeatureCollection"}},
    },
    tag="cases",
)

routes = [Route("/api/cases/{case_id}/annotations.geojson", annotations_export)]
