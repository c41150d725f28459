"""Failover detection: the admins hear once that a standby became the primary.

PostgreSQL starts a new timeline when it promotes a standby (or restores a backup to a
point in time), and keeps it across restarts, so a change of timeline is a failover and
a restart is not. The other candidates miss or invent promotions: a standby made by
``pg_basebackup`` shares its primary's system identifier; the server's address hides
behind a virtual IP or a proxy; its start time changes with every restart. The timeline
being written is the first 8 hex digits of the current WAL file's name
(``pg_control_checkpoint()`` lags until the first checkpoint after a promotion), and any
role may read it.

The timeline last seen is kept as the ``database_timeline`` check, so a monitor that
restarts or takes over compares with what its predecessor saw and does not alert again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from reelwatch.db.models import CheckState
from reelwatch.insights.checks import OK, CheckResult
from reelwatch.notify import outbox

TIMELINE_CHECK = "database_timeline"
FAILOVER_ACTION = (
    "You now run without a standby: build a new one from the new primary "
    "(`pg_basebackup -R`, docs/scale-out.md) and name it in the new primary's "
    "synchronous_standby_names; never restart the old primary as a primary. With "
    "asynchronous replication, uploads accepted just before the failover may have lost "
    'their rows: `reelwatch gc --dry-run` lists their folders ("no video row"); move '
    "them aside before any `reelwatch gc`, which would delete them."
)


def check_timeline(session: Session, now: datetime, environment: str) -> CheckResult:
    """The primary's timeline; a change since the last round is a failover, alerted."""
    timeline = current_timeline(session)
    seen = session.get(CheckState, TIMELINE_CHECK)
    if seen is None or seen.value is None:
        return CheckResult(OK, f"the primary writes timeline {timeline}", timeline)
    if int(seen.value) == timeline:
        return CheckResult(OK, seen.detail, timeline)
    _alert_failover(session, int(seen.value), timeline, now, environment)
    detail = f"the primary writes timeline {timeline} since a failover at {now:%Y-%m-%d %H:%M} UTC"
    return CheckResult(OK, detail, timeline)


def current_timeline(session: Session) -> int:
    wal_file = session.scalar(text("SELECT pg_walfile_name(pg_current_wal_lsn())"))
    return int(str(wal_file)[:8], 16)


def _alert_failover(
    session: Session, before: int, after: int, now: datetime, environment: str
) -> None:
    """One message, keyed by the change, so no monitor can send it twice."""
    outbox.enqueue(
        session,
        outbox.Message(
            key=f"alert:database_failover:{before}:{after}",
            channel=outbox.ALERT,
            recipient=outbox.ADMINS,
            subject=f"[reelwatch {environment}] INFO database_failover",
            body_text=(
                f"What: the database failed over: a standby was promoted (the primary "
                f"writes timeline {after}, it wrote timeline {before}).\n"
                f"Since: {now:%Y-%m-%d %H:%M:%S} UTC (seen by the monitor).\n"
                f"What to do: {FAILOVER_ACTION}"
            ),
        ),
    )
