"""The expected wait of a new upload, as admission control reads it: one row, not the
aggregates behind it.

The elected monitor computes the capacity estimate every round (``reelwatch.notices``'
status) and records its expected wait as the ``queue_wait`` check (always ``ok``: it is a
figure, not a health state; ``value`` in seconds, none while no worker is alive). An
upload reads that row by its key. When the row is missing or older than three monitor
rounds (no monitor runs, or it is stuck), the upload computes the estimate itself, as
before, rather than admitting blindly or refusing because the monitor is away: the
monitor's own check (``monitor``) alerts on that.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from reelwatch.db.models import CheckState
from reelwatch.insights.capacity import estimate_capacity
from reelwatch.insights.checks import OK, CheckResult, record_check
from reelwatch.insights.load import read_load
from reelwatch.timewords import span_in_words

QUEUE_WAIT_CHECK = "queue_wait"
FRESH_ROUNDS = 3  # monitor rounds after which the recorded figure is stale


def record_queue_wait(session: Session, wait_s: float, now: datetime) -> None:
    """Record ``wait_s`` (``math.inf``: no live worker) for the uploads to read."""
    if math.isinf(wait_s):
        result = CheckResult(OK, "no live worker: a new upload waits for one", None)
    else:
        result = CheckResult(OK, f"a new upload waits {span_in_words(wait_s)}", wait_s)
    record_check(session, QUEUE_WAIT_CHECK, result, now)


def expected_wait(
    session: Session, now: datetime, *, monitor_interval_s: float, lease_s: float
) -> float:
    """The recorded wait when fresh (one read by key), else the estimate computed now."""
    recorded = session.get(CheckState, QUEUE_WAIT_CHECK)
    max_age = timedelta(seconds=FRESH_ROUNDS * monitor_interval_s)
    if recorded is not None and now - recorded.checked_at <= max_age:
        return math.inf if recorded.value is None else recorded.value
    live_workers = read_load(session, lease_s=lease_s).live_workers
    return estimate_capacity(session, live_workers=live_workers).expected_wait_s
