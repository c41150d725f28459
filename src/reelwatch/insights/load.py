"""The current load, read from the database: queue, workers, throughput, failures.

One function, ``read_load``, answers both the admin overview and the Prometheus
scrape, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from reelwatch.database import utcnow
from reelwatch.db.models import Event, OutboxMessage, Task, Video, WorkerRecord
from reelwatch.engine import states
from reelwatch.notify import outbox

THROUGHPUT_WINDOW = timedelta(minutes=5)
FAILURE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class WorkerView:
    id: str
    hostname: str
    state: str
    heartbeat_age_s: float
    current_task_id: int | None
    alive: bool
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    tasks_by_state: dict[str, int]
    videos_by_status: dict[str, int]
    failed_videos_by_code: dict[str, int]
    waiting_tasks: int
    oldest_wait_s: float
    tasks_done_per_minute: float
    failure_ratio: float
    outcomes_last_hour: int
    outbox_pending: int
    outbox_parked: int = 0  # rejected for good: a bad address, or a message never buildable
    workers: list[WorkerView] = field(default_factory=list)

    @property
    def live_workers(self) -> int:
        return sum(worker.alive for worker in self.workers)


def read_load(session: Session, *, lease_s: float) -> Load:
    now = utcnow()
    workers = _workers(session, now, alive_within_s=max(15.0, 3 * lease_s))
    # Videos only: the monitor's pings have no subject.
    videos = Event.subject_id.is_not(None)
    failed = _events_since(session, "workflow_failed", now - FAILURE_WINDOW, videos)
    outcomes = failed + _events_since(session, "workflow_succeeded", now - FAILURE_WINDOW, videos)
    oldest = session.scalar(
        select(func.min(Task.run_at)).where(Task.state == states.QUEUED, Task.run_at <= now)
    )
    return Load(
        tasks_by_state=_counts(session, Task.state),
        videos_by_status=_counts(session, Video.status),
        failed_videos_by_code=_counts(session, Video.error_code, Video.status == "failed"),
        waiting_tasks=_count(session, Task.state == states.QUEUED, Task.run_at <= now),
        oldest_wait_s=(now - oldest).total_seconds() if oldest else 0.0,
        tasks_done_per_minute=_events_since(session, "task_succeeded", now - THROUGHPUT_WINDOW)
        / (THROUGHPUT_WINDOW.total_seconds() / 60),
        failure_ratio=failed / outcomes if outcomes else 0.0,
        outcomes_last_hour=outcomes,
        outbox_pending=_count_outbox(session, outbox.PENDING, outbox.SENDING),
        outbox_parked=_count_outbox(session, outbox.REJECTED),
        workers=workers,
    )


def _counts(
    session: Session, column: InstrumentedAttribute[Any], *where: ColumnElement[bool]
) -> dict[str, int]:
    query = select(column, func.count()).group_by(column).where(*where)
    return {str(key): int(count) for key, count in session.execute(query) if key is not None}


def _count(session: Session, *where: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(Task).where(*where)) or 0)


def _count_outbox(session: Session, *states: str) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state.in_(states))
    return int(session.scalar(query) or 0)


def _events_since(session: Session, kind: str, since: datetime, *where: ColumnElement[bool]) -> int:
    query = (
        select(func.count()).select_from(Event).where(Event.kind == kind, Event.at >= since, *where)
    )
    return int(session.scalar(query) or 0)


def _workers(session: Session, now: datetime, *, alive_within_s: float) -> list[WorkerView]:
    views = []
    for record in session.scalars(select(WorkerRecord).order_by(WorkerRecord.id)):
        age = (now - record.heartbeat_at).total_seconds()
        alive = record.state != "stopped" and age <= alive_within_s
        views.append(
            WorkerView(
                record.id,
                record.hostname,
                record.state,
                age,
                record.current_task_id,
                alive,
                dict(record.resources or {}),
            )
        )
    return views
