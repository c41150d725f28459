"""The JSON API's FastAPI application: wires settings, database and store into the routes.

The pages are installed on it one layer up (``reelwatch.web.app.create_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from reelwatch import __version__
from reelwatch.api.deps import Services
from reelwatch.api.errors import install_error_handlers
from reelwatch.api.protection import ReelwatchApp
from reelwatch.api.routes import admin, system, videos
from reelwatch.api.status_reads import StatusReads
from reelwatch.api.validation import NulFreeUrls
from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.storage import open_store
from reelwatch.videos.pipeline import register_video_workflow

GZIP_MINIMUM_BYTES = 1024  # below about a packet, compressing gains nothing


def create_api(settings: Settings) -> FastAPI:
    """The API over ``settings``' database and store; migrations are the caller's job."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url, pool_size=10)
        store = open_store(settings)
        store.ensure_layout()
        register_video_workflow(settings, store)
        app.state.services = Services(settings, db, store)
        yield
        db.dispose()

    # Off: /openapi.json and /docs answer 404. /docs is served by the pages
    # (reelwatch.web.docs), from this site's copy of Swagger UI; there is no /redoc.
    docs = settings.api_docs_enabled
    app = ReelwatchApp(
        settings,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        title="reelwatch",
        version=__version__,
        description="Upload videos, follow their processing, fetch the renditions.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(StatusReads)  # the innermost: its answers pass every other layer
    app.add_middleware(NulFreeUrls)
    # Text only: event streams, videos, images and 206 ranges pass as they are (Starlette's
    # defaults), and so do downloads of originals; level 6: most of 9's gain, far less CPU.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=GZIP_MINIMUM_BYTES,
        compresslevel=6,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/octet-stream"),
    )
    app.include_router(videos.router)
    app.include_router(admin.router)
    app.include_router(system.router)
    return app
