"""Slide routes: Deep Zoom descriptor and tiles, metadata, thumbnail, associated images."""

from __future__ import annotations

import re
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collab.metrics import ImageKind, ServerMetrics
from collab.slides.deepzoom import DeepZoomSlide
from collab.slides.library import Render, SlideLibrary, SlideNotFound
from collab.slides.reader import SlideError
from collab.web.access import AccessControl
from collab.web.api import describe
from collab.web.auth import client_address, current_user
from collab.web.errors import error

SLIDE_ID = re.compile(r"[0-9a-f]{16}")
TILE_NAME = re.compile(r"(\d{1,9})_(\d{1,9})\.(jpeg|png)")
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}
# Private: the images belong to a patient's case. Immutable: a slide never changes.
IMAGE_CACHE = "private, max-age=31536000, immutable"
THUMBNAIL_DEFAULT_PX = 512
THUMBNAIL_MAX_PX = 2048


class SlideProblem(Exception):
    """Carries the answer to send instead of a slide."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def _slide(request: Request, *, identified: bool = False) -> DeepZoomSlide:
    """The open slide, if the user may see it; with ``identified``, only for those who
    may see patient identifiers (labels and macro images show them)."""
    library: SlideLibrary = request.app.state.slides
    slide_id = request.path_params["slide_id"]
    if not SLIDE_ID.fullmatch(slide_id):
        raise SlideProblem(error(404, "No such slide.", request))
    access: AccessControl = request.app.state.access
    found = await access.slide(request, slide_id)
    if found is None:
        # The same answer as for a slide that does not exist (nothing leaks), unless the
        # person's access to its case has ended: they are told so.
        raise SlideProblem(await access.slide_refusal(request, slide_id))
    if identified and not found[2].identified:
        raise SlideProblem(error(403, "Label and macro images are not shown in anonymised views.", request))
    try:
        return await library.get(slide_id)
    except SlideNotFound:
        raise SlideProblem(error(404, "No such slide.", request)) from None
    except SlideError as exc:
        raise SlideProblem(error(503, f"The slide cannot be read: {exc}", request)) from None


def _library(request: Request) -> SlideLibrary:
    library: SlideLibrary = request.app.state.slides
    return library


def _not_modified(request: Request, etag: str) -> bool:
    tags = request.headers.get("if-none-match", "")
    return etag in (t.strip().removeprefix("W/") for t in tags.split(",")) or tags.strip() == "*"


async def _image(
    request: Request,
    etag: str,
    media_type: str,
    render: Render,
    cache_key: tuple[object, ...],
    kind: ImageKind = "tile",
) -> Response:
    """Answer with a cached or freshly rendered image, honouring If-None-Match; counted in
    /metrics by ``kind`` and outcome."""
    metrics: ServerMetrics = request.app.state.metrics
    headers = {"ETag": etag, "Cache-Control": IMAGE_CACHE}
    if _not_modified(request, etag):
        metrics.image_served(kind, "not_modified")
        return Response(status_code=304, headers=headers)
    library: SlideLibrary = request.app.state.slides
    started = time.perf_counter()
    try:
        body, source = await library.image(cache_key, render)
    except SlideError as exc:
        metrics.image_served(kind, "error")
        return error(503, f"This part of the slide cannot be read: {exc}", request)
    if source == "rendered":
        metrics.render_seconds[kind].observe(time.perf_counter() - started)
    metrics.image_served(kind, source)
    return Response(body, media_type=media_type, headers=headers)


async def tile(request: Request) -> Response:
    """``GET /slides/{slide_id}_files/{level}/{col}_{row}.{jpeg|png}``"""
    level_text = request.path_params["level"]
    match = TILE_NAME.fullmatch(request.path_params["tile"])
    if not level_text.isdigit() or len(level_text) > 9 or match is None:
        return error(404, "No such tile: the address must be {level}/{col}_{row}.jpeg or .png.")
    z_level, t_col, t_row, fmt = int(level_text), int(match[1]), int(match[2]), match[3]
    try:
        slide = await _slide(request)
    except SlideProblem as problem:
        return problem.response
    if not slide.geometry.has_tile(z_level, t_col, t_row):
        return error(404, "No such tile: the address is outside the slide.")
    return await _image(
        request,
        slide.tile_etag(z_level, t_col, t_row, fmt),
        MEDIA_TYPES[fmt],
        _library(request).tile_render(slide, z_level, t_col, t_row, fmt),
        slide.tile_key(z_level, t_col, t_row, fmt),
    )


async def dzi(request: Request) -> Response:
    """``GET /slides/{slide_id}.dzi``: what a viewer fetches to open a slide, so it is audited."""
    try:
        slide = await _slide(request)
    except SlideProblem as problem:
        return problem.response
    record = await request.app.state.db.catalog.slide(slide.slide_id)
    await request.app.state.db.audit.record(
        "slide opened",
        user=current_user(request),
        client=client_address(request),
        case_id=record.case_id if record else None,
        slide_id=slide.slide_id,
    )

    return Response(slide.dzi(), media_type="application/xml", headers={"Cache-Control": "private, no-cache"})


async def metadata(request: Request) -> Response:
    """``GET /api/slides/{slide_id}``"""
    try:
        slide = await _slide(request)
    except SlideProblem as problem:
        return problem.response
    return JSONResponse(slide.metadata())


async def thumbnail(request: Request) -> Response:
    """``GET /slides/{slide_id}/thumbnail.jpeg?max=N``"""
    raw = request.query_params.get("max", str(THUMBNAIL_DEFAULT_PX))
    if not raw.isdigit() or not 1 <= int(raw) <= THUMBNAIL_MAX_PX:
        return error(400, f"max must be a whole number of pixels from 1 to {THUMBNAIL_MAX_PX}.")
    max_px = int(raw)
    try:
        slide = await _slide(request)
    except SlideProblem as problem:
        return problem.response
    return await _image(
        request,
        f'"{slide.etag_base}-thumbnail-{max_px}"',
        "image/jpeg",
        _library(request).thread_render(lambda: slide.thumbnail(max_px)),
        (slide.slide_id, slide.etag_base, "thumbnail", max_px),
        "thumbnail",
    )


async def associated(request: Request) -> Response:
    """``GET /slides/{slide_id}/associated/{name}.jpeg``"""
    name = request.path_params["name"]
    try:
        slide = await _slide(request, identified=True)

    except SlideProblem as problem:
        return problem.response
    if name not in slide.reader.associated_names:
        return error(404, f"This slide has no {name} image." if name.isalnum() else "No such image.")
    return await _image(
        request,
        f'"{slide.etag_base}-associated-{name}"',
        "image/jpeg",
        _library(request).thread_render(lambda: slide.associated(name)),
        (slide.slide_id, slide.etag_base, "associated", name),
        "associated",
    )


describe(
    "/api/slides/{slide_id}",
    "get",
    "A slide's size, resolution, levels and associated images",
    response={
        "type": "object",
        "required": ["id", "width", "height", "levels", "tile_size"],
        "properties": {
            "id": {"type": "string"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "mpp_x": {"type": ["number", "null"]},
            "mpp_y": {"type": ["number", "null"]},
            "levels": {"type": "array", "items": {"type": "object"}},
            "associated": {"type": "array", "items": {"type": "string"}},
            "tile_size": {"type": "integer"},
        },
    },
    tag="slides",
)

routes = [
    Route("/api/slides/{slide_id}", metadata),
    Route("/slides/{slide_id}.dzi", dzi),
    Route("/slides/{slide_id}_files/{level}/{tile}", tile),
    Route("/slides/{slide_id}/thumbnail.jpeg", thumbnail),
    Route("/slides/{slide_id}/associated/{name}.jpeg", associated),
]
