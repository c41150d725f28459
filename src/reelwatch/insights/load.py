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
from reelwatch.failures import CAUSES, INPUT, SERVICE, failure_cause
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
    outcomes_last_hour: int
    outbox_pending: int
    # Videos that ended failed in the last hour, by cause (``failures.CAUSES``): the
    # service's failures are something to fix, the users' broken files are not.
    failures_last_hour: dict[str, int] = field(default_factory=dict)
    outbox_parked: int = 0  # rejected for good: a bad address, or a message never buildable
    workers: list[WorkerView] = field(default_factory=list)

    @property
    def live_workers(self) -> int:
        return sum(worker.alive for worker in self.workers)

    @property
    def failed_videos_by_cause(self) -> dict[str, int]:
        """Videos failed now (any time), by cause."""
        by_cause = dict.fromkeys(CAUSES, 0)
        for code, count in self.failed_videos_by_code.items():
            by_cause[failure_cause(code)] += count
        return by_cause

    def failure_ratio(self, cause: str) -> float:
        """The share of the last hour's finished videos that failed for ``cause``."""
        failed = self.failures_last_hour.get(cause, 0)
        return failed / self.outcomes_last_hour if self.outcomes_last_hour else 0.0

    @property
    def service_failure_ratio(self) -> float:
        return self.failure_ratio(SERVICE)

    @property
    def input_failure_ratio(self) -> float:
        return self.failure_ratio(INPUT)


def read_load(session: Session, *, lease_s: float) -> Load:
    now = utcnow()
    workers = _workers(session, now, alive_within_s=max(15.0, 3 * lease_s))
    # Videos only: the monitor's pings have no subject.
    videos = Event.subject_id.is_not(None)
    failures = _failures_since(session, now - FAILURE_WINDOW)
    succeeded = _events_since(session, "workflow_succeeded", now - FAILURE_WINDOW, videos)
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
        outcomes_last_hour=succeeded + sum(failures.values()),
        failures_last_hour=failures,
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


def _failures_since(session: Session, since: datetime) -> dict[str, int]:
    """Videos' workflows failed since ``since``, by cause; the code is in the event's
    data (JSON), read here rather than queried, as an hour holds few failures."""
    query = select(Event.data).where(
        Event.kind == "workflow_failed", Event.at >= since, Event.subject_id.is_not(None)
    )
    by_cause = dict.fromkeys(CAUSES, 0)
    for data in session.scalars(query):
        by_cause[failure_cause((data or {}).get("code"))] += 1
    return by_cause


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
