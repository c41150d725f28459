"""The API server role: uvicorn serving the FastAPI app, and a notification dispatcher
beside it, so the outbox is delivered even when no worker is alive."""

from __future__ import annotations

import os
import signal
import socket
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from reelwatch.api import create_app
from reelwatch.config import Settings
from reelwatch.db.database import Database
from reelwatch.notify.dispatcher import dispatching

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_server(settings: Settings) -> None:
    host, port = settings.host_port
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=10,
        access_log=False,
        # Only these proxies may name the client in X-Forwarded-For (the throttles' IP).
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = uvicorn.Server(config)
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
