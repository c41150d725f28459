"""The API server role: uvicorn serving the FastAPI app."""

from __future__ import annotations

import uvicorn

from reelwatch.api import create_app
from reelwatch.config import Settings


def run_server(settings: Settings) -> None:
    host, port = settings.host_port
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=10,
        access_log=False,
        # Only these proxies may name the client in X-Forwarded-For (the throttles' IP).
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
