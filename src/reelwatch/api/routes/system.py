"""Liveness, readiness, Prometheus metrics and the public service status."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from reelwatch.api.deps import ServicesDep
from reelwatch.monitor.capacity import estimate_capacity
from reelwatch.monitor.load import read_load
from reelwatch.monitor.metrics import Snapshot, read_snapshot, render_metrics

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: ServicesDep) -> JSONResponse:
    """Ready to accept uploads: the database answers and the media store is writable."""
    checks: dict[str, str] = {}
    try:
        svc.db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        svc.store.check_writable()
        checks["storage"] = "ok"
    except OSError as exc:
        checks["storage"] = f"error: {exc.strerror or exc}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(svc: ServicesDep) -> PlainTextResponse:
    """Prometheus text format, computed from the shared database."""

    def read() -> Snapshot:
        with svc.db.read() as session:
            return read_snapshot(session, lease_s=svc.settings.lease_seconds)

    return PlainTextResponse(render_metrics(read), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/status")
def public_status(svc: ServicesDep) -> dict[str, Any]:
    """Public: whether processing is working, and how long a new upload would wait."""
    with svc.db.read() as session:
        load = read_load(session, lease_s=svc.settings.lease_seconds)
        capacity = estimate_capacity(session, live_workers=load.live_workers)
    status = "degraded" if load.waiting_tasks and not load.live_workers else "operational"
    wait = capacity.expected_wait_s
    return {
        "status": status,
        "environment": svc.settings.env,
        "notices": [],
        "queue": {
            "waiting_tasks": load.waiting_tasks,
            "live_workers": load.live_workers,
            "oldest_wait_s": load.oldest_wait_s,
        },
        # None while no worker is alive: the wait has no bound.
        "expected_queue_wait_s": None if math.isinf(wait) else wait,
    }
