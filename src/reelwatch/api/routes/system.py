"""Liveness, readiness and the public service status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from reelwatch.api.deps import ServicesDep
from reelwatch.db.database import utcnow
from reelwatch.db.models import Task, WorkerRecord
from reelwatch.engine import states

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


@router.get("/api/v1/status")
def public_status(svc: ServicesDep) -> dict[str, Any]:
    """Public: whether processing is working, and how long a new upload would wait."""
    now = utcnow()
    live_after = now - timedelta(seconds=max(15.0, 3 * svc.settings.lease_seconds))
    with svc.db.read() as session:
        waiting = (
            session.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.state == states.QUEUED, Task.run_at <= now)
            )
            or 0
        )
        workers = (
            session.scalar(
                select(func.count())
                .select_from(WorkerRecord)
                .where(WorkerRecord.heartbeat_at >= live_after, WorkerRecord.state != "stopped")
            )
            or 0
        )
        oldest = session.scalar(
            select(func.min(Task.run_at)).where(Task.state == states.QUEUED, Task.run_at <= now)
        )
    status = "degraded" if waiting and not workers else "operational"
    return {
        "status": status,
        "environment": svc.settings.env,
        "notices": [],
        "queue": {
            "waiting_tasks": waiting,
            "live_workers": workers,
            "oldest_wait_s": (now - oldest).total_seconds() if oldest else 0.0,
        },
    }
