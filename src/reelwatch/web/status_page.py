"""The public status page (``/status``): the overall state, each component with 90 days
of uptime, the notices, past incidents, and "tell me when it is back". Readable without
signing in and without JavaScript."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from reelwatch.api.deps import ServicesDep
from reelwatch.api.session import session_user
from reelwatch.api.throttles import check_subscription, retry_message
from reelwatch.database import utcnow
from reelwatch.inputs import InvalidInput, parse_address
from reelwatch.insights.checks import list_checks
from reelwatch.insights.uptime import DailyUptime, daily_uptime, overall
from reelwatch.notices.service import past_incidents
from reelwatch.notices.status import OPERATIONAL, read_status, subscribe
from reelwatch.web.deps import FormDep, PageError
from reelwatch.web.templating import flash, render

router = APIRouter(include_in_schema=False)

UPTIME_DAYS = 90
# What users rely on, in their words, and the check that watches it.
COMPONENTS = (
    ("Uploads and the database", "database"),
    ("Media storage", "storage"),
    ("Video processing", "ping_ffmpeg"),
    ("Upload to ready, end to end", "e2e_probe"),
    ("E-mail", "smtp"),
)


@dataclass(frozen=True)
class Component:
    label: str
    state: str  # ok, warning, critical, unknown
    detail: str
    days: list[DailyUptime]
    uptime: float | None


@router.get("/status")
def status_page(request: Request, svc: ServicesDep) -> HTMLResponse:
    now = utcnow()
    with svc.db.read() as session:
        status = read_status(session, lease_s=svc.settings.lease_seconds, now=now)
        checks = {check["name"]: check for check in list_checks(session, now)}
        components = [
            _component(
                label, checks.get(name), daily_uptime(session, name, days=UPTIME_DAYS, now=now)
            )
            for label, name in COMPONENTS
        ]
        incidents = past_incidents(session, now - timedelta(days=UPTIME_DAYS))
    wait = status.capacity.expected_wait_s
    context = {
        "status": status,
        "components": components,
        "incidents": incidents,
        "can_subscribe": status.status != OPERATIONAL,
        "expected_wait_s": None if math.isinf(wait) else wait,
    }
    user = session_user(request, svc.db)
    return render(request, svc, "status.html.j2", context, user=user)


@router.post("/status/subscribe")
def subscribe_form(request: Request, svc: ServicesDep, form: FormDep) -> RedirectResponse:
    now = utcnow()
    try:
        email = parse_address(str(form.get("email", "")))
    except InvalidInput:
        flash(request, "That is not one e-mail address (such as name@example.com).")
        return RedirectResponse("/status", status_code=303)
    retry_after = check_subscription(svc, request, email)
    if retry_after is not None:
        message = retry_message("Too many subscriptions from here or to this address", retry_after)
        raise PageError(429, message + ".", headers={"Retry-After": str(retry_after)})
    with svc.db.write() as session:
        status = read_status(session, lease_s=svc.settings.lease_seconds, now=now)
        if status.status == OPERATIONAL:
            flash(request, "reelwatch is working normally right now: nothing to wait for.")
        else:
            subscription = subscribe(session, email, now)
            flash(request, f"We will e-mail {subscription.email} once when it is back.")
    return RedirectResponse("/status", status_code=303)


def _component(label: str, check: dict[str, Any] | None, days: list[DailyUptime]) -> Component:
    if check is None:
        return Component(label, "unknown", "not checked yet", days, overall(days))
    return Component(label, check["state"], check["detail"], days, overall(days))
