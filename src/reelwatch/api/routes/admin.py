"""``/api/v1/admin``: the overview of the service, and operations on many videos at once."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query

from reelwatch.api.deps import ServicesDep, UserDep
from reelwatch.failures import FailureCode
from reelwatch.monitor.capacity import estimate_capacity
from reelwatch.monitor.load import read_load
from reelwatch.monitor.rules import firing_alerts
from reelwatch.videos import service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/overview")
def overview(svc: ServicesDep, user: UserDep) -> dict[str, Any]:
    """Queue depth and wait, throughput, workers, failure ratio (admins)."""
    if not user.is_admin:
        raise PermissionError("the overview is for admins")
    with svc.db.read() as session:
        load = read_load(session, lease_s=svc.settings.lease_seconds)
        alerts = firing_alerts(session)
        capacity = estimate_capacity(session, live_workers=load.live_workers)
    return {
        "queue": {
            "waiting_tasks": load.waiting_tasks,
            "oldest_wait_s": load.oldest_wait_s,
            "tasks_by_state": load.tasks_by_state,
        },
        "throughput": {"tasks_per_minute": load.tasks_done_per_minute},
        "videos": {
            "by_status": load.videos_by_status,
            "failed_by_code": load.failed_videos_by_code,
        },
        "failure_ratio": load.failure_ratio,
        "outbox_pending": load.outbox_pending,
        "workers": [asdict(worker) for worker in load.workers],
        "live_workers": load.live_workers,
        "alerts": alerts,
        "capacity": _finite(asdict(capacity)),
    }


@router.post("/retry")
def retry_failed(
    svc: ServicesDep, user: UserDep, code: Annotated[FailureCode, Query()]
) -> dict[str, Any]:
    """Re-run every failed video whose error code is ``code``."""
    restarted = service.retry_failed_with_code(svc.db, user, code.value)
    return {"code": code.value, "restarted": restarted}


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no infinity: an unbounded wait (no live worker) is null.
    return {k: None if isinstance(v, float) and math.isinf(v) else v for k, v in values.items()}
