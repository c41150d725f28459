"""The public status page (``/status``): the overall state, each component with 90 days
of uptime (days without data shown as such and left out of the percentage), the notices
with the components they affect and their updates, past incidents, and "tell me when it
is back". Readable without signing in and without JavaScript; it reloads itself."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from reelwatch.api.deps import ServicesDep
from reelwatch.api.session import session_user
from reelwatch.api.throttles import check_subscription, retry_message
from reelwatch.database import utcnow
from reelwatch.db.models import Notice
from reelwatch.inputs import InvalidInput, parse_address
from reelwatch.insights.checks import list_checks
from reelwatch.insights.uptime import DailyUptime, daily_uptime, overall
from reelwatch.notices.components import COMPONENTS, ComponentSpec
from reelwatch.notices.service import INCIDENT, affected_components, past_incidents
from reelwatch.notices.status import OPERATIONAL, read_status, subscribe
from reelwatch.web.deps import FormDep, PageError
from reelwatch.web.templating import flash, render

router = APIRouter(include_in_schema=False)

UPTIME_DAYS = 90
REFRESH_S = 60  # the page reloads itself (a meta refresh: no script needed)


@dataclass(frozen=True)
class Component:
    label: str
    state: str  # ok, warning, critical, unknown
    detail: str
    days: list[DailyUptime]
    uptime: float | None  # over the days with data only
    incidents: list[Notice] = field(default_factory=list)  # the open ones affecting it
    # Why it is down, in users' words (the checks' own details stay off this public page).
    reason: str = ""

    @property
    def days_with_data(self) -> int:
        return sum(day.ratio is not None for day in self.days)


@router.get("/status")
def status_page(request: Request, svc: ServicesDep) -> HTMLResponse:
    now = utcnow()
    with svc.db.read() as session:
        status = read_status(session, lease_s=svc.settings.lease_seconds, now=now)
        checks = {check["name"]: check for check in list_checks(session, now)}
        open_incidents = [notice for notice in status.active if notice.kind == INCIDENT]
        components = [
            _component(
                spec,
                checks.get(spec.check),
                daily_uptime(session, spec.check, days=UPTIME_DAYS, now=now),
                [n for n in open_incidents if spec.key in affected_components(n)],
                status.emergencies,
            )
            for spec in COMPONENTS
        ]
        incidents = past_incidents(session, now - timedelta(days=UPTIME_DAYS))
    wait = status.capacity.expected_wait_s
    context = {
        "status": status,
        "components": components,
        # Incidents naming no component affect the service as a whole.
        "whole_service_incidents": [n for n in open_incidents if not affected_components(n)],
        "affected_labels": {
            notice.id: [c.label for c in components if notice in c.incidents]
            for notice in open_incidents
        },
        "refresh_s": REFRESH_S,
        "uptime_days": UPTIME_DAYS,
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


def _component(
    spec: ComponentSpec,
    check: dict[str, Any] | None,
    days: list[DailyUptime],
    incidents: list[Notice],
    emergencies: frozenset[str],
) -> Component:
    state, detail = (check["state"], check["detail"]) if check else ("unknown", "not checked yet")
    # The headline says down while an emergency fires: so does the row it concerns,
    # even if its own check passed before the workers went.
    firing = [words for rule, words in spec.emergencies if rule in emergencies]
    if firing:
        state = "critical"
    return Component(
        spec.label, state, detail, days, overall(days), incidents, reason="; ".join(firing)
    )
