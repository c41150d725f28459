"""The statements both stores share, built once: building and hashing a statement costs
more Python than running it, and workers run these for every task."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, exists, insert, select, update

from reelwatch.engine import states
from reelwatch.engine.rows import EVENTS, TASK_COLUMNS, TASKS

INSERT_EVENT = insert(EVENTS)

DUE_TASK = select(
    exists().where(
        TASKS.c.state == states.QUEUED,
        TASKS.c.queue.in_(bindparam("queues", expanding=True)),
        TASKS.c.run_at <= bindparam("now"),
    )
)


def claim_statement(*, same_kind: bool, skip_locked: bool) -> Any:
    """UPDATE … RETURNING of the most urgent due tasks (``limit`` of them, of
    ``batch_kind`` when ``same_kind``); ``skip_locked``: the inner SELECT passes over rows
    other workers are claiming right now."""
    due = select(TASKS.c.id).where(
        TASKS.c.state == states.QUEUED,
        TASKS.c.queue.in_(bindparam("queues", expanding=True)),
        TASKS.c.run_at <= bindparam("now"),
    )
    if same_kind:
        due = due.where(TASKS.c.kind == bindparam("batch_kind"))
    due = due.order_by(TASKS.c.priority, TASKS.c.run_at, TASKS.c.id).limit(bindparam("limit"))
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (
        update(TASKS)
        .where(TASKS.c.id.in_(due.scalar_subquery()))
        .values(
            state=states.RUNNING,
            attempt=TASKS.c.attempt + 1,
            worker_id=bindparam("worker_id"),
            lease_expires_at=bindparam("lease_expires_at"),
            started_at=bindparam("now"),
            progress=0.0,
        )
        .returning(*TASK_COLUMNS)
    )
