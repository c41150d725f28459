"""Checks' records: where each component stands (``checks``) and every change of state
(``check_transitions``, the history and the uptime), written by the monitor's checks
(``reelwatch.monitor.checks``) and read by the pages, the API and the metrics.

A check's state is ``ok``, ``warning``, ``critical`` or ``unknown``. A check that is
``warning`` or ``critical`` for long enough becomes an alert (``alerts.check_rules``),
and its recovery a resolved message: "components down, and up again".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from reelwatch.db.models import CheckState, CheckTransition, Leadership

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
SEVERITY = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}
HISTORY_KEPT = timedelta(days=90)
# The lease (``engine.leadership``) of the monitor's singleton duties.
MONITOR_LEASE = "monitor"
# The end-to-end probe's check (``reelwatch.monitor.probe``).
E2E_PROBE_CHECK = "e2e_probe"


@dataclass(frozen=True)
class CheckResult:
    state: str
    detail: str  # the value or the error, in words
    value: float | None = None


def record_check(session: Session, name: str, result: CheckResult, now: datetime) -> None:
    """Store ``result`` as the check's current state; a change of state is history."""
    current = session.get(CheckState, name)
    if current is None:
        current = CheckState(name=name, state=result.state, since=now)
        session.add(current)
        changed = True
    else:
        changed = current.state != result.state
        if changed:
            current.state, current.since = result.state, now
    current.checked_at, current.detail, current.value = now, result.detail, result.value
    if changed:
        session.add(CheckTransition(name=name, state=result.state, at=now, detail=result.detail))


def forget_checks(session: Session, keep: Callable[[str], bool]) -> None:
    """Drop the checks ``keep`` rejects (a worker that stopped for good); history stays."""
    for check in session.scalars(select(CheckState)):
        if not keep(check.name):
            session.delete(check)


def prune_history(session: Session, now: datetime) -> None:
    session.execute(delete(CheckTransition).where(CheckTransition.at < now - HISTORY_KEPT))


def list_checks(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Every check, the worst first, for the overview and ``reelwatch checks``; with the
    monitor's own, read from its lease (a dead monitor cannot report itself)."""
    checks = [*session.scalars(select(CheckState)), _monitor_check(session, now)]
    ordered = sorted(checks, key=lambda c: (-SEVERITY.get(c.state, 1), c.name))
    return [
        {
            "name": check.name,
            "state": check.state,
            "since": check.since.isoformat() + "Z",
            "checked_at": check.checked_at.isoformat() + "Z",
            "detail": check.detail,
            "value": check.value,
        }
        for check in ordered
    ]


def _monitor_check(session: Session, now: datetime) -> CheckState:
    lease = session.get(Leadership, MONITOR_LEASE)
    if lease is None:
        state, detail, since = UNKNOWN, "no monitor has run yet (`reelwatch monitor`)", now
    elif lease.expires_at < now:
        state, since = CRITICAL, lease.expires_at
        detail = f"no monitor has held the lease since {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        state, detail, since = OK, f"{lease.holder} leads", now
    return CheckState(name="monitor", state=state, since=since, checked_at=now, detail=detail)


def check_history(session: Session, since: datetime) -> list[dict[str, Any]]:
    """The state changes since ``since``, newest first."""
    query = (
        select(CheckTransition)
        .where(CheckTransition.at >= since)
        .order_by(CheckTransition.at.desc(), CheckTransition.id.desc())
    )
    return [
        {"name": t.name, "state": t.state, "at": t.at.isoformat() + "Z", "detail": t.detail}
        for t in session.scalars(query)
    ]
