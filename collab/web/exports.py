"""Annotations out and in as GeoJSON, for QuPath and other tools:

    GET  /api/cases/{case_id}/annotations.geojson[?slide=ID]
    POST /api/cases/{case_id}/annotations.geojson?slide=ID   (QuPath's GeoJSON; collab.sync.geojson_import)

An import goes into the case's live document as one change by the server, so everyone in the
room sees the shapes at once; the importer is their author."""

from __future__ import annotations

import asyncio
import json
import secrets

from pycrdt import Doc, Map
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab import __version__
from collab.slides.dicomweb import DicomWebRef, parse_source, store_instance
from collab.slides.library import SlideNotFound
from collab.slides.reader import SlideError
from collab.store import Database
from collab.store.database import now_iso
from collab.sync.dicom_ann import SlideRef, annotations_to_dicom, read_dicom_annotations
from collab.sync.export import annotations_geojson
from collab.sync.geojson_import import Imported, ImportRefused, read_geojson
from collab.web.api import describe, session_csrf_ok
from collab.web.auth import client_address, current_user
from collab.web.errors import problem
from collab.web.forms import read_body

MAX_IMPORT_BYTES = 16 * 1024 * 1024
GEOJSON_TYPES = ("application/json", "application/geo+json")


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


async def annotations_import(request: Request) -> Response:
    """QuPath GeoJSON into one slide of the case, live; the importer is the author."""
    found = await _slide_of(request, write=True)
    if isinstance(found, Response):
        return found
    case_id, slide = found
    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in GEOJSON_TYPES:
        return problem(415, "Send the GeoJSON as application/geo+json or application/json.")
    body = await read_body(request, MAX_IMPORT_BYTES)
    if isinstance(body, Response):
        return problem(413, f"The file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MiB.")
    try:
        imported = read_geojson(json.loads(body))
    except (ValueError, UnicodeDecodeError) as exc:
        detail = str(exc) if isinstance(exc, ImportRefused) else "The body is not valid JSON."
        return problem(422 if isinstance(exc, ImportRefused) else 400, detail)
    return await _add_shapes(request, case_id, slide, imported, "GeoJSON")


async def _add_shapes(request: Request, case_id: str, slide: str, imported: Imported, form: str) -> Response:
    """The shapes into the case's live document as one change, the importer their author."""
    db: Database = request.app.state.db
    user = current_user(request)
    now = now_iso()
    ids = [secrets.token_hex(16) for _ in imported.shapes]

    def write(doc: Doc) -> None:  # type: ignore[type-arg]
        annotations = doc.get("annotations", type=Map)
        for annotation_id, shape in zip(ids, imported.shapes, strict=True):
            annotations[annotation_id] = Map(
                {
                    **shape,
                    "slide": slide,
                    "author": str(user.id),
                    "authorName": user.display_name,
                    "created": now,
                    "updated": now,
                }
            )

    rooms = request.app.state.rooms
    room = await rooms.join(case_id)
    try:
        room.change(write)
    finally:
        await rooms.left(room)
    await db.audit.record(
        "annotations imported",
        user=user,
        client=client_address(request),
        case_id=case_id,
        slide_id=slide,
        detail=f"{form}, {len(ids)} shapes" + "".join(f"; {note}" for note in imported.left_out),
    )
    return JSONResponse({"imported": len(ids), "ids": ids, "left_out": imported.left_out}, status_code=201)


async def _slide_of(request: Request, *, write: bool) -> tuple[str, str] | Response:
    """The case and the slide (``?slide=ID``, one of the case's) of an exchange; for an import,
    only for those who contribute, with the session's CSRF token."""
    case_id = request.path_params["case_id"]
    found = await request.app.state.access.case(request, case_id)
    if found is None:
        return await request.app.state.access.refusal(request, case_id, api=True)
    case, access = found
    if write:
        if not session_csrf_ok(request):
            return problem(403, "Missing or wrong X-CSRF-Token header for this session.")
        if not access.contribute or request.scope.get("token_scope") == "read":
            return problem(403, "Importing or storing annotations is for those who contribute to the case.")
    db: Database = request.app.state.db
    slide = request.query_params.get("slide", "")
    if slide not in {record.id for record in await db.catalog.slides_of_case(case.id)}:
        return problem(422, "Say which of the case's slides: ?slide=ID.")
    return case.id, slide


async def _slide_ref(request: Request, slide_id: str) -> SlideRef:
    try:
        opened = await request.app.state.slides.get(slide_id)
    except (SlideNotFound, SlideError):
        return SlideRef.derived(slide_id)
    uids = getattr(opened.reader, "dicom_uids", None)
    return SlideRef(*uids) if uids and all(uids) else SlideRef.derived(slide_id)


async def _dicom_of(request: Request, case_id: str, slide: str) -> tuple[bytes, int] | Response:
    """One slide's annotations as a DICOM ANN instance, and how many there are."""
    doc = await request.app.state.rooms.document(case_id)
    values = json.loads(str(doc.get("annotations", type=Map))) if "annotations" in set(doc.keys()) else {}
    shapes = [v for v in values.values() if isinstance(v, dict) and v.get("slide") == slide]
    ref = await _slide_ref(request, slide)
    try:
        data = await asyncio.to_thread(annotations_to_dicom, shapes, ref, version=__version__)
    except ImportRefused as exc:
        return problem(404, str(exc))
    return data, len(shapes)


async def dicom_export(request: Request) -> Response:
    """The annotations of one slide as DICOM Microscopy Bulk Simple Annotations."""
    found = await _slide_of(request, write=False)
    if isinstance(found, Response):
        return found
    case_id, slide = found
    made = await _dicom_of(request, case_id, slide)
    if isinstance(made, Response):
        return made
    data, count = made
    await request.app.state.db.audit.record(
        "annotations exported",
        user=current_user(request),
        client=client_address(request),
        case_id=case_id,
        slide_id=slide,
        detail=f"DICOM ANN, {count} annotations",
    )
    return Response(
        data,
        media_type="application/dicom",
        headers={"Content-Disposition": f'attachment; filename="annotations-{slide}.dcm"'},
    )


async def dicom_store(request: Request) -> Response:
    """``POST /api/cases/{case_id}/annotations.dcm/pacs?slide=ID``: the slide's annotations as
    DICOM ANN, stored with STOW-RS in the PACS the slide is read from, beside it."""
    found = await _slide_of(request, write=True)
    if isinstance(found, Response):
        return found
    case_id, slide = found
    record = await request.app.state.db.catalog.slide(slide)
    source = parse_source(record.path, request.app.state.settings.integrations) if record else None
    if not isinstance(source, DicomWebRef):
        return problem(409, "This slide is a file on the server, not in a PACS: download the .dcm instead.")
    made = await _dicom_of(request, case_id, slide)
    if isinstance(made, Response):
        return made
    data, count = made
    try:
        uid = await asyncio.to_thread(store_instance, source, data)
    except SlideError as exc:
        return problem(503, str(exc))
    await request.app.state.db.audit.record(
        "annotations exported",
        user=current_user(request),
        client=client_address(request),
        case_id=case_id,
        slide_id=slide,
        detail=f"DICOM ANN, {count} annotations, stored in the PACS at {source.server} as {uid}",
    )
    return JSONResponse(
        {"sop_instance_uid": uid, "study": source.study, "pacs": source.server}, status_code=201
    )


async def dicom_import(request: Request) -> Response:
    """DICOM Microscopy Bulk Simple Annotations into one slide, live."""
    found = await _slide_of(request, write=True)
    if isinstance(found, Response):
        return found
    case_id, slide = found
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/dicom":
        return problem(415, "Send the file as application/dicom.")
    body = await read_body(request, MAX_IMPORT_BYTES)
    if isinstance(body, Response):
        return problem(413, f"The file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MiB.")
    try:
        imported, _ = await asyncio.to_thread(read_dicom_annotations, body)
    except ImportRefused as exc:
        return problem(422, str(exc))
    return await _add_shapes(request, case_id, slide, imported, "DICOM ANN")


# What an import answers, and the slide every exchange but the whole-case export names.
IMPORTED = {
    "type": "object",
    "required": ["imported", "ids", "left_out"],
    "properties": {"imported": {"type": "integer"}, "left_out": {"type": "array"}},
}
ONE_SLIDE = {"slide": {"type": "string"}}

describe(
    "/api/cases/{case_id}/annotations.geojson",
    "post",
    "Import QuPath GeoJSON (FeatureCollection, list or Feature) into one slide (?slide=ID), live",
    body={"type": ["object", "array"]},
    response=IMPORTED,
    status=201,
    query=ONE_SLIDE,
    tag="cases",
)

describe(
    "/api/cases/{case_id}/annotations.dcm",
    "get",
    "One slide's annotations (?slide=ID) as DICOM Microscopy Bulk Simple Annotations (application/dicom)",
    query=ONE_SLIDE,
    tag="cases",
)
describe(
    "/api/cases/{case_id}/annotations.dcm",
    "post",
    "Import DICOM Microscopy Bulk Simple Annotations (application/dicom) into one slide (?slide=ID), live",
    response=IMPORTED,
    status=201,
    query=ONE_SLIDE,
    tag="cases",
)

describe(
    "/api/cases/{case_id}/annotations.dcm/pacs",
    "post",
    "Store one slide's annotations (?slide=ID) as DICOM ANN with STOW-RS in the PACS the slide is read from",
    response={"type": "object", "required": ["sop_instance_uid", "study", "pacs"]},
    status=201,
    query=ONE_SLIDE,
    tag="cases",
)

routes = [
    Route("/api/cases/{case_id}/annotations.geojson", annotations_export, methods=["GET"]),
    Route("/api/cases/{case_id}/annotations.geojson", annotations_import, methods=["POST"]),
    Route("/api/cases/{case_id}/annotations.dcm", dicom_export, methods=["GET"]),
    Route("/api/cases/{case_id}/annotations.dcm", dicom_import, methods=["POST"]),
    Route("/api/cases/{case_id}/annotations.dcm/pacs", dicom_store, methods=["POST"]),
]
