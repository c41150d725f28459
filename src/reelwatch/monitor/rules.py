"""Alert rules over the current load, and the state machine that turns them into alerts.

A rule whose condition holds is ``pending`` until it has held for the rule's ``for_s``
(no alert on a blip), then ``firing``: the admins get one alert, repeated every
``REPEAT_S`` while it lasts, and one "resolved" message when it clears. Each message goes
through the outbox, written in the transaction that changes the rule's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import AlertState
from reelwatch.monitor.load import Load
from reelwatch.notify import outbox

OK, PENDING, FIRING = "ok", "pending", "firing"
REPEAT_S = 3600.0


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str  # "warning", or "critical" for emergencies that need a person now
    for_s: float
    condition: Callable[[Load], bool]
    describe: Callable[[Load], str]  # the current value, in words
    action: str  # what to do


# A node is short of resources past any of these (psutil figures its workers report).
RESOURCE_LIMITS = {
    "disk_free_percent": (10.0, "below"),
    "memory_percent": (90.0, "above"),
    "load_per_core": (4.0, "above"),
}


def strained_nodes(load: Load) -> list[str]:
    """'worker: figure value' for every live worker past a resource limit."""
    found = []
    for worker in load.workers:
        for figure, (limit, side) in RESOURCE_LIMITS.items():
            value = worker.resources.get(figure)
            if (
                worker.alive
                and value is not None
                and (value < limit if side == "below" else value > limit)
            ):
                found.append(f"{worker.id}: {figure} {value:g} ({side} {limit:g})")
    return found


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "no_live_worker",
        "critical",
        30,
        lambda load: load.waiting_tasks > 0 and load.live_workers == 0,
        lambda load: f"{load.waiting_tasks} tasks wait and no worker is alive",
        "Restart needed: run `reelwatch up` (one machine) or start `reelwatch worker` on the "
        "processing machines; `reelwatch workers` shows the last heartbeats.",
    ),
    AlertRule(
        "queue_stalled",
        "critical",
        60,
        lambda load: load.oldest_wait_s > 600 and load.tasks_done_per_minute == 0,
        lambda load: (
            f"the oldest task has waited {load.oldest_wait_s / 60:.0f} min and "
            "nothing finished in 5 min"
        ),
        "Restart needed: workers are alive but not processing. Restart them "
        "(`reelwatch up`, or each `reelwatch worker`) and check `reelwatch events` of a "
        "waiting video.",
    ),
    AlertRule(
        "failure_ratio_high",
        "warning",
        300,
        lambda load: load.outcomes_last_hour >= 4 and load.failure_ratio > 0.5,
        lambda load: (
            f"{load.failure_ratio:.0%} of {load.outcomes_last_hour} videos failed in the last hour"
        ),
        "Look at the failure codes (`reelwatch queue`, /metrics reelwatch_failed_videos); "
        "recoverable ones point at a component, permanent ones at the uploads.",
    ),
    AlertRule(
        "node_resources_low",
        "warning",
        300,
        lambda load: bool(strained_nodes(load)),
        lambda load: "; ".join(strained_nodes(load)),
        "Free disk space under REELWATCH_HOME (delete old media), add memory or "
        "processing machines, or lower REELWATCH_WORKERS on the strained node.",
    ),
)


def firing_alerts(session: Session) -> list[dict[str, str]]:
    """The rules firing now, for the overview."""
    severity = {rule.name: rule.severity for rule in RULES}
    query = select(AlertState).where(AlertState.state == FIRING).order_by(AlertState.since)
    return [
        {
            "rule": s.rule,
            "severity": severity.get(s.rule, "warning"),
            "value": s.value,
            "since": s.since.isoformat() + "Z",
        }
        for s in session.scalars(query)
    ]


def evaluate_rules(session: Session, load: Load, now: datetime, environment: str) -> list[str]:
    """Advance every rule's state; returns the names of the rules firing now."""
    states = {s.rule: s for s in session.scalars(select(AlertState))}
    firing = []
    for rule in RULES:
        state = states.get(rule.name)
        if state is None:
            state = AlertState(rule=rule.name, state=OK, since=now, value="")
            session.add(state)
        _advance(session, rule, state, load, now, environment)
        if state.state == FIRING:
            firing.append(rule.name)
    return firing


def _advance(
    session: Session,
    rule: AlertRule,
    state: AlertState,
    load: Load,
    now: datetime,
    environment: str,
) -> None:
    holds = rule.condition(load)
    if holds:
        state.value = rule.describe(load)
    if not holds:
        if state.state == FIRING:
            _alert(session, rule, state, environment, resolved=True, now=now)
        if state.state != OK:
            state.state, state.since = OK, now
    elif state.state == OK:
        state.state, state.since = PENDING, now
    elif state.state == PENDING and (now - state.since).total_seconds() >= rule.for_s:
        state.state = FIRING
        _alert(session, rule, state, environment, resolved=False, now=now)
    elif (
        state.state == FIRING
        and state.notified_at
        and (now - state.notified_at).total_seconds() >= REPEAT_S
    ):
        _alert(session, rule, state, environment, resolved=False, now=now)


def _alert(
    session: Session,
    rule: AlertRule,
    state: AlertState,
    environment: str,
    *,
    resolved: bool,
    now: datetime,
) -> None:
    since = state.since.strftime("%Y-%m-%d %H:%M:%S UTC")
    if resolved:
        title = f"[reelwatch {environment}] RESOLVED {rule.name}"
        body = f"{rule.name} is resolved at {now:%H:%M:%S} UTC (it was firing since {since})."
        key = f"alert:{rule.name}:{state.since.isoformat()}:resolved"
    else:
        title = f"[reelwatch {environment}] {rule.severity.upper()} {rule.name}"
        body = f"What: {state.value}.\nSince: {since}.\nWhat to do: {rule.action}"
        key = f"alert:{rule.name}:{state.since.isoformat()}:firing:{now.isoformat()}"
    outbox.enqueue(
        session,
        outbox.Message(
            key=key,
            channel=outbox.ALERT,
            recipient=outbox.ADMINS,
            subject=title,
            body_text=body,
        ),
    )
    state.notified_at = now
