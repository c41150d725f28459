"""Silences: "I know, stop telling me" for an alert rule, for a while.

A silence names a rule, or a pattern of rules (``check:worker:*``, shell-style), and an
end. While it lasts the rule still changes state, and shows as silenced, but no message
is sent; a rule still firing when its silence ends alerts again at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import Silence


def add_silence(
    session: Session, rule: str, duration: timedelta, *, by: str, comment: str, now: datetime
) -> Silence:
    if duration <= timedelta(0):
        raise ValueError("a silence must last some time")
    silence = Silence(
        rule=rule, starts_at=now, ends_at=now + duration, created_by=by, comment=comment
    )
    session.add(silence)
    session.flush()
    return silence


def end_silence(session: Session, silence_id: int, now: datetime) -> bool:
    """End a silence now; False when there is no such silence still running."""
    silence = session.get(Silence, silence_id)
    if silence is None or silence.ends_at <= now:
        return False
    silence.ends_at = now
    return True


def active_silences(session: Session, now: datetime) -> list[Silence]:
    query = select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
    return list(session.scalars(query.order_by(Silence.ends_at)))


def silence_for(silences: list[Silence], rule: str) -> Silence | None:
    """The silence covering ``rule`` that lasts longest, if any."""
    matching = [s for s in silences if fnmatchcase(rule, s.rule)]
    return max(matching, key=lambda s: s.ends_at, default=None)


def silence_as_dict(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "rule": silence.rule,
        "starts_at": silence.starts_at.isoformat() + "Z",
        "ends_at": silence.ends_at.isoformat() + "Z",
        "created_by": silence.created_by,
        "comment": silence.comment,
    }
