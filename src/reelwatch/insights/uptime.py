"""Uptime per component and day, read from the checks' history (``check_transitions``).

A component is up while its check is not ``critical``; a day's uptime is the share of
the day it was up, counted from the first time the check was seen (None before that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import CheckTransition
from reelwatch.insights.checks import CRITICAL


@dataclass(frozen=True)
class DailyUptime:
    day: date
    ratio: float | None  # None: not watched that day


def daily_uptime(session: Session, check: str, days: int, now: datetime) -> list[DailyUptime]:
    """The last ``days`` days, oldest first, today included (up to ``now``)."""
    first_day = now.date() - timedelta(days=days - 1)
    start = datetime.combine(first_day, time())
    spans = _down_spans(session, check, start, now)
    watched_from = _first_seen(session, check)
    result = []
    for offset in range(days):
        day_start = start + timedelta(days=offset)
        day_end = min(day_start + timedelta(days=1), now)
        if watched_from is None or watched_from >= day_end:
            result.append(DailyUptime(day_start.date(), None))
            continue
        observed_start = max(day_start, watched_from)
        observed = (day_end - observed_start).total_seconds()
        down = sum(_overlap(span, observed_start, day_end) for span in spans)
        result.append(DailyUptime(day_start.date(), 1 - down / observed if observed else None))
    return result


def overall(days: list[DailyUptime]) -> float | None:
    watched = [d.ratio for d in days if d.ratio is not None]
    return sum(watched) / len(watched) if watched else None


def _down_spans(
    session: Session, check: str, start: datetime, now: datetime
) -> list[tuple[datetime, datetime]]:
    before = session.scalars(
        select(CheckTransition)
        .where(CheckTransition.name == check, CheckTransition.at < start)
        .order_by(CheckTransition.at.desc())
        .limit(1)
    ).first()
    changes = list(
        session.scalars(
            select(CheckTransition)
            .where(CheckTransition.name == check, CheckTransition.at >= start)
            .order_by(CheckTransition.at, CheckTransition.id)
        )
    )
    spans = []
    down_since = start if before is not None and before.state == CRITICAL else None
    for change in changes:
        if change.state == CRITICAL and down_since is None:
            down_since = change.at
        elif change.state != CRITICAL and down_since is not None:
            spans.append((down_since, change.at))
            down_since = None
    if down_since is not None:
        spans.append((down_since, now))
    return spans


def _first_seen(session: Session, check: str) -> datetime | None:
    return session.scalars(
        select(CheckTransition.at)
        .where(CheckTransition.name == check)
        .order_by(CheckTransition.at)
        .limit(1)
    ).first()


def _overlap(span: tuple[datetime, datetime], start: datetime, end: datetime) -> float:
    return max(0.0, (min(span[1], end) - max(span[0], start)).total_seconds())
