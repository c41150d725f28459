"""The API server role: uvicorn serving the FastAPI app, and a notification dispatcher
beside it, so the outbox is delivered even when no worker is alive."""

from __future__ import annotations

import logging
import os
import signal
import socket
from types import FrameType

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE

from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.notify.dispatcher import dispatching
from reelwatch.web import create_app

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

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
        log_level=settings.log_level,
        # JSON logs: uvicorn's loggers go through the root's JSON handler (reelwatch.logs).
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        timeout_graceful_shutdown=10,
        access_log=False,
        # Only these proxies may name the client in X-Forwarded-For (the throttles' IP).
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def log_startup_warnings(settings: Settings) -> None:
    for warning in settings.startup_warnings():
        log.warning(warning)


def run_server(settings: Settings) -> None:
    log_startup_warnings(settings)
    server = uvicorn.Server(server_config(settings))
    db = Database(settings.resolved_database_url, pool_size=1)
    owner = f"{socket.gethostname()}:{os.getpid()}:server"
    # uvicorn raises the stop signal again once it has shut down (and a signal may come
    # before it listens for them): held until the dispatcher has stopped too, then
    # raised, so the process still ends as signalled.
    received: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        server.should_exit = True

    defaults = {sig: signal.signal(sig, hold) for sig in STOP_SIGNALS}
    try:
        with dispatching(db, settings, owner=owner):
            server.run()
    finally:
        db.dispose()
        for sig, handler in defaults.items():
            signal.signal(sig, handler)
    for signum in received:
        signal.raise_signal(signum)
    if not server.started:  # the port is taken, say: exit as `uvicorn.run` does
        raise SystemExit(STARTUP_FAILURE)
