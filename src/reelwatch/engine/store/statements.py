"""The statements both stores share, built once: building and hashing a statement costs
more Python than running it, and workers run these for every task."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, insert

from reelwatch.engine.rows import EVENTS, TASK_COLUMNS, TASK_LEASES, TASKS

INSERT_EVENT = insert(EVENTS)

_IN_QUEUES = TASKS.c.queue.in_(bindparam("queues", expanding=True))

DUE_TASK = TASK_LEASES.any_due(_IN_QUEUES)


def claim_statement(*, same_kind: bool, skip_locked: bool) -> Any:
    """UPDATE … RETURNING of the most urgent due tasks (``limit`` of them, of
    ``batch_kind`` when ``same_kind``); ``skip_locked``: the inner SELECT passes over rows
    other workers are claiming right now."""
    where: list[ColumnElement[bool]] = [_IN_QUEUES]
    if same_kind:
        where.append(TASKS.c.kind == bindparam("batch_kind"))
    return TASK_LEASES.claim(
        *where,
        order_by=(TASKS.c.priority, TASKS.c.run_at, TASKS.c.id),
        returning=TASK_COLUMNS,
        values={"started_at": bindparam("now"), "progress": 0.0},
        skip_locked=skip_locked,
    )
