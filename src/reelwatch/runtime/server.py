"""The API server role: uvicorn serving the FastAPI app."""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import ASGIApp

from reelwatch.api import create_app
from reelwatch.config import Settings

log = logging.getLogger(__name__)

# The most of an unfinished request head (request line and headers) h11 buffers before
# answering 400; h11's own default, spelled out so that it does not move with the library.
MAX_REQUEST_HEAD_BYTES = 16 * 1024


def server_config(settings: Settings, app: ASGIApp | None = None) -> uvicorn.Config:
    """uvicorn with reelwatch's limits. h11, not httptools even where it is installed, so
    that the head limit above holds. No ``limit_concurrency``: event streams and long
    uploads hold connections legitimately, and past the limit uvicorn answers every new
    client a bare 503; bound connections per client in the reverse proxy instead
    (deploy/nginx). A request body that stalls is ended by the app (api/protection.py)."""
    host, port = settings.host_port
    return uvicorn.Config(
        app if app is not None else create_app(settings),
        host=host,
        port=port,
        http="h11",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level="info",
        timeout_graceful_shutdown=10,
        access_log=False,
    )


def log_startup_warnings(settings: Settings) -> None:
    for warning in settings.startup_warnings():
        log.warning(warning)


def run_server(settings: Settings) -> None:
    log_startup_warnings(settings)
    uvicorn.Server(server_config(settings)).run()
