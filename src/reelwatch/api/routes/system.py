"""Liveness, readiness, Prometheus metrics and the public service status."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from reelwatch.api.deps import ServicesDep
from reelwatch.api.errors import ApiError
from reelwatch.api.throttles import check_subscription, too_many_requests
from reelwatch.api.validation import Text
from reelwatch.database import utcnow
from reelwatch.inputs import MAX_ADDRESS_LENGTH, parse_address
from reelwatch.insights.metrics import Snapshot, read_snapshot, render_metrics
from reelwatch.notices.service import notice_as_dict
from reelwatch.notices.status import OPERATIONAL, read_status, subscribe

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
    """Public: the service's state, its notices (active and upcoming), and how long a
    new upload would wait."""
    with svc.db.read() as session:
        status = read_status(session, lease_s=svc.settings.lease_seconds, now=utcnow())
    load, wait = status.load, status.capacity.expected_wait_s
    return {
        "status": status.status,
        "environment": svc.settings.env,
        # True in simulation mode: renditions are not really transcoded.
        "simulated": svc.settings.simulate,
        "notices": [notice_as_dict(notice, status.updates[notice.id]) for notice in status.active],
        "upcoming": [notice_as_dict(notice) for notice in status.upcoming],
        "queue": {
            "waiting_tasks": load.waiting_tasks,
            "live_workers": load.live_workers,
            "oldest_wait_s": load.oldest_wait_s,
        },
        # None while no worker is alive: the wait has no bound.
        "expected_queue_wait_s": None if math.isinf(wait) else wait,
    }


class Subscription(BaseModel):
    email: Text = Field(min_length=3, max_length=MAX_ADDRESS_LENGTH)


@router.post("/api/v1/status/subscribe", status_code=202)
def subscribe_to_status(request: Request, svc: ServicesDep, body: Subscription) -> dict[str, str]:
    """Public: one e-mail to ``email`` (exactly one address) when the service is
    operational again (only while it is not). Throttled per client IP and per address
    (429 + Retry-After)."""
    email = parse_address(body.email)  # InvalidInput: 422 before any database work
    retry_after = check_subscription(svc, request, email)
    if retry_after is not None:
        raise too_many_requests("Too many subscriptions from here or to this address", retry_after)
    now = utcnow()
    with svc.db.write() as session:
        status = read_status(session, lease_s=svc.settings.lease_seconds, now=now)
        if status.status == OPERATIONAL:
            raise ApiError(409, "operational", "reelwatch is working normally right now")
        subscribe(session, email, now)
    return {"status": "subscribed", "email": email}
