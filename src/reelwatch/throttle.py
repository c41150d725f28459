"""Throttles shared by every server on one database: ``hit`` counts an attempt and says
how long to wait once a limit is reached; a refusal costs one small transaction, so callers
ask before any expensive work (a password hash, an e-mail).

One ``throttle_counters`` row per key (a scope and a digest of the subject: an account,
a client IP, an address; no address is stored in clear) counts the attempts in a fixed
window that starts with the key's first attempt. The count and the check are one
``INSERT … ON CONFLICT DO UPDATE … RETURNING``, atomic on SQLite and PostgreSQL, so
concurrent attempts on several servers never slip past a limit. Rows whose window has
ended are deleted as attempts come in (and by ``reelwatch gc``), so the table holds one
row per subject active in the last window.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from reelwatch.database import Database, retry_on_conflict, utcnow
from reelwatch.db.models import ThrottleCounter


@dataclass(frozen=True)
class Limit:
    scope: str  # what is counted, e.g. "login-ip"
    attempts: int  # allowed per window; 0: no limit
    window_s: float

    def key(self, subject: str) -> str:
        return f"{self.scope}:{hashlib.sha256(subject.encode()).hexdigest()[:40]}"


Attempt = Sequence[tuple[Limit, str]]  # each limit with the subject it is counted for


class _Refused(Exception):
    def __init__(self, wait_s: float) -> None:
        super().__init__(wait_s)
        self.wait_s = wait_s


@retry_on_conflict
def hit(db: Database, attempt: Attempt, now: datetime | None = None) -> int | None:
    """Count one attempt against every ``(limit, subject)``; None while all are within
    their limits, else the seconds until the last exceeded window ends (for Retry-After).
    A refused attempt counts nowhere: an account locked by its failures does not use up
    its IP's allowance."""
    now = now or utcnow()
    try:
        with db.write() as session:
            purge_expired(session, now)
            waits = []
            for limit, subject in attempt:
                if limit.attempts <= 0:
                    continue
                hits, ends_at = _count(session, limit.key(subject), limit.window_s, now)
                if hits > limit.attempts:
                    waits.append((ends_at - now).total_seconds())
            if waits:
                raise _Refused(max(waits))  # rolls the counts back
    except _Refused as refused:
        return max(1, math.ceil(refused.wait_s))
    return None


@retry_on_conflict
def forgive(db: Database, *, reset: Attempt = (), refund: Attempt = ()) -> None:
    """After a success: ``reset`` forgets the subjects' counts, ``refund`` takes back the
    one attempt that succeeded (so only failures add up)."""
    with db.write() as session:
        for limit, subject in reset:
            key = limit.key(subject)
            session.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))
        for limit, subject in refund:
            session.execute(
                update(ThrottleCounter)
                .where(ThrottleCounter.key == limit.key(subject), ThrottleCounter.hits > 0)
                .values(hits=ThrottleCounter.hits - 1)
            )


def purge_expired(session: Session, now: datetime) -> int:
    """Delete the counters whose window has ended (a new attempt starts afresh anyway)."""
    result = session.execute(delete(ThrottleCounter).where(ThrottleCounter.ends_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _count(session: Session, key: str, window_s: float, now: datetime) -> tuple[int, datetime]:
    """Add one to ``key``'s count (a new window if its last one ended); the count and the
    window's end after that."""
    fresh_end = now + timedelta(seconds=window_s)
    ended = ThrottleCounter.ends_at <= now
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    statement = (
        insert(ThrottleCounter)
        .values(key=key, hits=1, ends_at=fresh_end)
        .on_conflict_do_update(
            index_elements=[ThrottleCounter.key],
            set_={
                "hits": case((ended, 1), else_=ThrottleCounter.hits + 1),
                "ends_at": case((ended, fresh_end), else_=ThrottleCounter.ends_at),
            },
        )
        .returning(ThrottleCounter.hits, ThrottleCounter.ends_at)
    )
    hits, ends_at = session.execute(statement).one()
    return int(hits), ends_at
