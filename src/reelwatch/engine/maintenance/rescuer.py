"""The lease rescuer (Oban's Lifeline, River's job_rescuer): re-queues the running tasks
whose lease ran out, as ``worker_lost``, so a dead worker's task runs elsewhere.

Options: ``interval_s`` (default ``RESCUE_INTERVAL_S``, 0.5 s: a dead worker's task is
taken over at most this long after its lease ran out), ``backoff_scale`` (1.0, the
retry delay's multiplier) and ``limit`` (100 tasks per round). Reports how many tasks it
re-queued. ``expire_stale_leases(worker_id=…)`` is also the supervisor's immediate
rescue of a child it saw die, which need not wait for the lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from reelwatch.database import Database, utcnow
from reelwatch.engine import rows
from reelwatch.engine.failures import WORKER_LOST, TaskFailure
from reelwatch.engine.queue import ClaimedTask, claim_of, fail_task
from reelwatch.engine.rows import (
    TASK_COLUMNS,
    TASK_LEASES,
    TASKS,
    WORKFLOW_COLUMNS,
    TaskRow,
    WorkflowRow,
)

log = logging.getLogger(__name__)

RESCUE_INTERVAL_S = 0.5
RESCUE_LIMIT = 100


@dataclass(frozen=True)
class LeaseRescuer:
    db: Database
    backoff_scale: float = 1.0
    interval_s: float = RESCUE_INTERVAL_S
    limit: int = RESCUE_LIMIT
    name: str = "lease rescuer"

    def run(self, now: datetime) -> int:
        rescued = expire_stale_leases(
            self.db, backoff_scale=self.backoff_scale, limit=self.limit, now=now
        )
        if rescued:
            log.warning("rescued %d tasks whose worker stopped heartbeating", rescued)
        return rescued


def find_expired_leases(
    db: Database,
    *,
    worker_id: str | None = None,
    limit: int = RESCUE_LIMIT,
    now: datetime | None = None,
) -> list[ClaimedTask]:
    """Running tasks whose lease ran out before ``now``, or every task held by
    ``worker_id`` (a worker its supervisor saw die, which need not wait for the lease)."""
    query = select(*TASK_COLUMNS, *WORKFLOW_COLUMNS).join_from(
        TASKS, rows.WORKFLOWS, TASKS.c.workflow_id == rows.WORKFLOWS.c.id
    )
    leases = TASK_LEASES.expired() if worker_id is None else TASK_LEASES.held_by(worker_id)
    query = query.where(leases).order_by(TASKS.c.lease_expires_at).limit(limit)
    with db.read() as session:
        found = session.execute(query, {"now": now or utcnow()}).all()
    split = len(TASK_COLUMNS)
    return [claim_of(TaskRow(*row[:split]), WorkflowRow(*row[split:])) for row in found]


def expire_stale_leases(
    db: Database,
    *,
    worker_id: str | None = None,
    backoff_scale: float = 1.0,
    limit: int = RESCUE_LIMIT,
    now: datetime | None = None,
) -> int:
    """Re-queue tasks whose worker is gone as ``worker_lost``; safe to run anywhere,
    any number of times, because each rescue is fenced like a completion (a lease
    renewed since it was found is not rescued)."""
    rescued = 0
    for claim in find_expired_leases(db, worker_id=worker_id, limit=limit, now=now):
        failure = TaskFailure(
            WORKER_LOST,
            f"worker {claim.worker_id} stopped heartbeating during attempt {claim.attempt}",
        )
        expired = worker_id is None
        state = fail_task(db, claim, failure, backoff_scale=backoff_scale, expired_lease=expired)
        rescued += state is not None
    return rescued
