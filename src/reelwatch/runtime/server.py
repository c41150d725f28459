"""The API server role: uvicorn serving the FastAPI app, and a notification dispatcher
beside it, so the outbox is delivered even when no worker is alive."""

from __future__ import annotations

import os
import socket

import uvicorn

from reelwatch.api import create_app
from reelwatch.config import Settings
from reelwatch.db.database import Database
from reelwatch.notify.dispatcher import dispatching


def run_server(settings: Settings) -> None:
    host, port = settings.host_port
    db = Database(settings.resolved_database_url, pool_size=1)
    owner = f"{socket.gethostname()}:{os.getpid()}:server"
    try:
        with dispatching(db, settings, owner=owner):
            uvicorn.run(
                create_app(settings),
                host=host,
                port=port,
                log_level="info",
                timeout_graceful_shutdown=10,
                access_log=False,
            )
    finally:
        db.dispose()
