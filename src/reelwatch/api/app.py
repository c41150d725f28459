"""The JSON API's FastAPI application: wires settings, database and store into the routes.

The pages are installed on it one layer up (``reelwatch.web.app.create_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from reelwatch import __version__
from reelwatch.api.deps import Services
from reelwatch.api.errors import install_error_handlers
from reelwatch.api.protection import ReelwatchApp
from reelwatch.api.routes import admin, system, videos
from reelwatch.api.validation import NulFreeUrls
from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.storage import MediaStore
from reelwatch.videos.pipeline import register_video_workflow


def create_api(settings: Settings) -> FastAPI:
    """The API over ``settings``' database and store; migrations are the caller's job."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url, pool_size=10)
        store = MediaStore(settings.media_root)
        store.ensure_layout()
        register_video_workflow(settings, store)
        app.state.services = Services(settings, db, store)
        yield
        db.dispose()

    docs = settings.api_docs_enabled  # off: /docs, /redoc and /openapi.json answer 404
    app = ReelwatchApp(
        settings,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        title="reelwatch",
        version=__version__,
        description="Upload videos, follow their processing, fetch the renditions.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(NulFreeUrls)
    app.include_router(videos.router)
    app.include_router(admin.router)
    app.include_router(system.router)
    return app
