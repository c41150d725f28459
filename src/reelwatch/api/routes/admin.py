"""``/api/v1/admin``: the overview of the service, and operations on many videos at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from reelwatch.api.deps import ServicesDep, UserDep
from reelwatch.api.errors import ApiError
from reelwatch.api.validation import PathId, RowId, Text
from reelwatch.database import utcnow
from reelwatch.db.models import User
from reelwatch.engine.worker import request_drain
from reelwatch.failures import FailureCode
from reelwatch.insights.activity import customer_activity
from reelwatch.insights.alerts import list_alerts
from reelwatch.insights.checks import check_history, list_checks
from reelwatch.insights.history import load_history
from reelwatch.insights.overview import CHECK_HISTORY_SHOWN, build_overview
from reelwatch.insights.silences import active_silences, add_silence, end_silence, silence_as_dict
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


@router.get("/checks")
def get_checks(svc: ServicesDep, user: UserDep) -> dict[str, Any]:
    """Every check's state, and the state changes of the last ``CHECK_HISTORY_SHOWN``."""
    _require_admin(user)
    now = utcnow()
    with svc.db.read() as session:
        return {
            "checks": list_checks(session, now),
            "history": check_history(session, now - CHECK_HISTORY_SHOWN),
        }


@router.get("/activity")
def get_activity(svc: ServicesDep, user: UserDep) -> dict[str, Any]:
    """Per user: uploads, failures, retries, last upload."""
    _require_admin(user)
    with svc.db.read() as session:
        return {"users": customer_activity(session, exclude_email=svc.settings.probe_email)}


@router.get("/alerts")
def get_alerts(svc: ServicesDep, user: UserDep) -> dict[str, Any]:
    """The rules pending or firing, and the silences in force."""
    _require_admin(user)
    now = utcnow()
    with svc.db.read() as session:
        return {
            "alerts": list_alerts(session, now),
            "silences": [silence_as_dict(s) for s in active_silences(session, now)],
        }


class SilenceRequest(BaseModel):
    rule: Text = Field(min_length=1, max_length=200, description="a rule name or pattern")
    # At least a second: a tinier positive float is no time at all to a timedelta.
    minutes: float = Field(ge=1 / 60, le=366 * 24 * 60)
    comment: Text = Field("", max_length=2000)


@router.post("/silences", status_code=201)
def create_silence(svc: ServicesDep, user: UserDep, body: SilenceRequest) -> dict[str, Any]:
    """Mute a rule (or every rule matching a pattern such as ``check:worker:*``)."""
    _require_admin(user)
    with svc.db.write() as session:
        silence = add_silence(
            session,
            body.rule,
            timedelta(minutes=body.minutes),
            by=user.email,
            comment=body.comment,
            now=utcnow(),
        )
        return silence_as_dict(silence)


@router.delete("/silences/{silence_id}", status_code=204)
def delete_silence(silence_id: RowId, svc: ServicesDep, user: UserDep) -> Response:
    """End a silence now."""
    _require_admin(user)
    with svc.db.write() as session:
        if not end_silence(session, silence_id, utcnow()):
            raise ApiError(404, "not_found", f"no running silence {silence_id}")
    return Response(status_code=204)


@router.post("/workers/{worker_id}/drain", status_code=202)
def drain_worker(worker_id: PathId, svc: ServicesDep, user: UserDep) -> dict[str, Any]:
    """Ask a worker to finish its task, claim no more, and exit."""
    _require_admin(user)
    if not request_drain(svc.db, worker_id):
        raise ApiError(404, "not_found", f"no running worker {worker_id}")
    return {"worker": worker_id, "draining": True}


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
