"""Spare capacity on a queue right now: live workers that serve it, less the tasks it
keeps busy and the due ones it keeps waiting. A handler asks it to choose between
splitting its work across idle workers and keeping it whole (``TaskContext.spare_workers``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from reelwatch.engine import states
from reelwatch.engine.schema import Task, WorkerRecord

# A worker that missed this many presence beats is not counted on.
BEATS_MISSED = 3


def spare_workers(
    session: Session,
    queue: str,
    *,
    now: datetime,
    presence_interval_s: float,
    excluding_task: int | None = None,
) -> int:
    """How many more tasks ``queue`` could start at once, none waiting, once the asking
    task (``excluding_task``) is done; never negative."""
    fresh = now - timedelta(seconds=BEATS_MISSED * presence_interval_s)
    serving = sum(
        queue in queues.split(",")
        for queues in session.scalars(
            select(WorkerRecord.queues).where(
                WorkerRecord.heartbeat_at >= fresh,
                WorkerRecord.state.not_in(("stopped", "lost")),
                WorkerRecord.drain_requested_at.is_(None),
            )
        )
    )
    busy = _count(session, queue, Task.state == states.RUNNING, Task.id != (excluding_task or 0))
    waiting = _count(session, queue, Task.state == states.QUEUED, Task.run_at <= now)
    return max(0, serving - busy - waiting)


def _count(session: Session, queue: str, *where: ColumnElement[bool]) -> int:
    query = select(func.count()).select_from(Task).where(Task.queue == queue, *where)
    return int(session.scalar(query) or 0)
