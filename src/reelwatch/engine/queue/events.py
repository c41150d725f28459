"""The checkpoints a queue transaction writes, and the wake-up it sends.

Every state change writes its event in the same transaction, so the timeline can never
disagree with the state. ``events_batched`` gathers a transaction's events into one
insert (the store's), which is what keeps a batch of completions cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from reelwatch.database import utcnow
from reelwatch.engine.rows import EVENTS
from reelwatch.engine.spec import WorkflowView
from reelwatch.engine.store import store_for
from reelwatch.engine.store.statements import INSERT_EVENT

_EVENT_BUFFER = "reelwatch_event_buffer"


class EventTask(Protocol):
    """What an event records of its task (any ``TaskView`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def worker_id(self) -> str | None: ...


def record_event(
    session: Session,
    kind: str,
    workflow: WorkflowView,
    *,
    task: EventTask | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Write a checkpoint in the session's transaction: a plain INSERT at once (the unit
    of work cost more than everything else a task's transactions do), or, inside
    ``events_batched``, one INSERT for them all at its end."""
    values = {
        "at": at or utcnow(),
        "kind": kind,
        "workflow_id": workflow.id,
        "subject_id": workflow.subject_id,
        "task": task.name if task else None,
        "attempt": task.attempt if task else None,
        "worker": task.worker_id if task else None,
        "data": data or {},
    }
    buffer = session.info.get(_EVENT_BUFFER)
    if buffer is not None:
        buffer.append(values)
    else:
        session.execute(INSERT_EVENT, values)


@contextmanager
def events_batched(session: Session) -> Iterator[None]:
    """Insert the events recorded inside (observers' included) together at the end, in
    the order they were recorded. Nothing inside may read the events."""
    buffer: list[dict[str, Any]] = []
    session.info[_EVENT_BUFFER] = buffer
    try:
        yield
    finally:
        del session.info[_EVENT_BUFFER]
    store_for(session).insert_many(session, EVENTS, buffer)


def notify_new_work(session: Session) -> None:
    """Wake idle workers when this transaction commits."""
    store_for(session).notify_new_work(session)


def iso(moment: datetime | None) -> str | None:
    """A timestamp as events carry it."""
    return moment.isoformat() + "Z" if moment else None
