"""The web application: one routes table and a lifespan that owns the database and slides."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from collab.analysis.workers import AnalysisWorkers
from collab.config import Settings
from collab.meeting_channels import MeetingChannels
from collab.metrics import ServerMetrics
from collab.security import dummy_hash, load_secret
from collab.singleflight import SingleFlight
from collab.slides.dicomweb import DicomWebRef, parse_source
from collab.slides.library import SlideLibrary
from collab.store import Database
from collab.sync.bus import Bus
from collab.sync.rooms import Rooms
from collab.sync.teaching import TeachingRoom
from collab.throttle import JoinThrottle
from collab.web import (
    account,
    admin_users,
    admin_users_api,
    agenda,
    analyses,
    analysis_flags,
    analysis_jobs,
    api,
    audit,
    auth,
    cases,
    cases_api,
    classroom,
    exports,
    meeting_admin,
    meeting_api,
    meeting_room,
    meetings,
    opinions,
    ops,
    organisations,
    pacs,
    pages,
    people,
    sign_on,
    slides,
    snapshots,
    sync,
    teaching,
    timeline,
    unassigned,
    uploads,
)
from collab.web.access import AccessControl
from collab.web.error_pages import ErrorPages
from collab.web.headers import SecurityHeaders
from collab.web.live import LiveLinks

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings) -> Starlette:
    """Build the app for ``settings``; nothing happens until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dummy_hash()  # made before the first sign-in, whose time must not tell if the name exists
        async with contextlib.AsyncExitStack() as stack:
            db = await stack.enter_async_context(Database(settings.database_path, settings.database_url))
            bus = await stack.enter_async_context(Bus(settings.redis_url)) if settings.redis_url else None
            rooms = await stack.enter_async_context(Rooms(db.documents, bus=bus, prefix="case:"))
            teaching_rooms = await stack.enter_async_context(
                Rooms(db.teaching.documents, TeachingRoom, bus=bus, prefix="teaching:")
            )

            async def resolve(slide_id: str) -> Path | DicomWebRef | None:
                record = await db.catalog.slide(slide_id)
                return parse_source(record.path, settings.integrations) if record else None

            library = SlideLibrary(
                resolve,
                threads=settings.slide_threads,
                max_open=settings.max_open_slides,
                tile_cache_bytes=settings.tile_cache_mb << 20,
                chunk_cache_bytes=settings.pixel_cache_mb << 20,
                tile_processes=settings.tile_processes,
            )
            await library.warm_up()
            app.state.analysis_workers = await stack.enter_async_context(
                AnalysisWorkers(settings.analysis_workers, settings.data_dir, settings.database_url)
            )
            app.state.settings = settings
            app.state.db = db
            app.state.slides = library
            app.state.secret = load_secret(settings.data_dir / "secret.key")
            app.state.identities = auth.Identities(db, app.state.secret)
            app.state.access = AccessControl(db)
            app.state.rooms = rooms
            app.state.bus = bus
            app.state.teaching_rooms = teaching_rooms
            app.state.classroom = classroom.Classroom(db, app.state.secret)
            app.state.meeting_channels = MeetingChannels(bus)
            app.state.login_throttle = auth.LoginThrottle()
            app.state.join_throttle = JoinThrottle()
            app.state.metrics = ServerMetrics()
            app.state.readiness = SingleFlight()  # one /readyz check at a time (collab.web.ops)
            try:
                # Open websockets and event streams, closed when the right they stand on ends.
                async with LiveLinks(db, app.state.classroom, app.state.access) as app.state.live:
                    yield
            finally:
                library.close()

    routes = [
        *ops.routes,  # /healthz, /readyz, /metrics
        *auth.routes,
        *sign_on.routes,
        *api.routes,
        *cases.routes,  # before pages: /cases/new is not a case id
        *cases_api.routes,
        *pages.routes,
        *opinions.routes,
        *people.routes,
        *meeting_admin.routes,  # before meetings: /meetings/new is not a meeting id
        *agenda.routes,
        *meetings.routes,
        *meeting_api.routes,
        *meeting_room.routes,
        *exports.routes,
        *pacs.routes,
        *snapshots.routes,
        *teaching.routes,
        *classroom.routes,
        *timeline.routes,
        *audit.routes,
        *admin_users.routes,
        *admin_users_api.routes,
        *organisations.routes,
        *account.routes,
        # Before the slide routes: /api/slides/unassigned is not a slide id.
        *uploads.routes,
        *unassigned.routes,
        *analyses.routes,
        *analysis_jobs.routes,
        *analysis_flags.routes,
        *slides.routes,
        *sync.routes,
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    # Outermost first: every answer, the sign-in redirect included, carries the security headers.
    middleware = [Middleware(SecurityHeaders), Middleware(ErrorPages), Middleware(auth.AuthMiddleware)]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
