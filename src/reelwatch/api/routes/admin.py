"""``/api/v1/admin``: the overview of the service, and operations on many videos at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from reelwatch.api.deps import ServicesDep, UserDep
from reelwatch.db.database import utcnow
from reelwatch.db.models import User
from reelwatch.failures import FailureCode
from reelwatch.monitor.history import load_history
from reelwatch.monitor.overview import build_overview
from reelwatch.videos import service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/overview")
def overview(svc: ServicesDep, user: UserDep) -> dict[str, Any]:
    """Queue depth and wait, throughput, workers, failure ratio, alerts, capacity (admins)."""
    _require_admin(user)
    with svc.db.read() as session:
        return build_overview(session, svc.settings)


@router.get("/history")
def history(
    svc: ServicesDep, user: UserDep, hours: Annotated[float, Query(gt=0, le=168)] = 6
) -> dict[str, Any]:
    """The load sampled once a minute over the last ``hours`` (admins)."""
    _require_admin(user)
    with svc.db.read() as session:
        return {"samples": load_history(session, utcnow() - timedelta(hours=hours))}


@router.post("/retry")
def retry_failed(
    svc: ServicesDep, user: UserDep, code: Annotated[FailureCode, Query()]
) -> dict[str, Any]:
    """Re-run every failed video whose error code is ``code``."""
    restarted = service.retry_failed_with_code(svc.db, user, code.value)
    return {"code": code.value, "restarted": restarted}


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise PermissionError("this is for admins")
