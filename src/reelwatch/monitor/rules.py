"""The alert rules' state machine, run by the elected monitor: a rule whose condition
holds (``reelwatch.insights.alerts``) is ``pending``, then ``firing``; the admins get one
alert, repeated every ``REPEAT_S`` while it lasts, and one "resolved" message when it
clears, each through the outbox, in the transaction that changes the rule's state.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import AlertState
from reelwatch.insights.alerts import FIRING, OK, PENDING, RULES, AlertRule, check_rules
from reelwatch.insights.load import Load
from reelwatch.insights.silences import active_silences, silence_for
from reelwatch.notify import outbox

REPEAT_S = 3600.0


def evaluate_rules(session: Session, load: Load, now: datetime, environment: str) -> list[str]:
    """Advance every rule's state; returns the names of the rules firing now."""
    states = {s.rule: s for s in session.scalars(select(AlertState))}
    silences = active_silences(session, now)
    firing = []
    for rule in (*RULES, *check_rules(session)):
        state = states.pop(rule.name, None)
        if state is None:
            state = AlertState(rule=rule.name, state=OK, since=now, value="")
            session.add(state)
        silenced = silence_for(silences, rule.name) is not None
        _advance(session, rule, state, load, now, environment, silenced=silenced)
        if state.state == FIRING:
            firing.append(rule.name)
    for gone in states.values():  # a check that no longer exists (a worker retired)
        if gone.state == FIRING and gone.notified_at:
            rule = AlertRule(gone.rule, "warning", 0, lambda _: False, str, "")
            _alert(session, rule, gone, environment, resolved=True, now=now)
        session.delete(gone)
    return firing


def _advance(
    session: Session,
    rule: AlertRule,
    state: AlertState,
    load: Load,
    now: datetime,
    environment: str,
    *,
    silenced: bool,
) -> None:
    if not rule.condition(load):
        if state.state == FIRING and state.notified_at and not silenced:
            _alert(session, rule, state, environment, resolved=True, now=now)
        if state.state != OK:
            state.state, state.since, state.notified_at = OK, now, None
        return
    state.value = rule.describe(load)
    if state.state == OK:
        state.state, state.since = PENDING, now
    if state.state == PENDING and (now - state.since).total_seconds() >= rule.for_s:
        state.state = FIRING
    repeat_due = state.notified_at is None or (now - state.notified_at).total_seconds() >= REPEAT_S
    if state.state == FIRING and repeat_due and not silenced:
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
