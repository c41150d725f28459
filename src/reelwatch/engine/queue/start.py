"""Starting workflows: one, or many in one transaction with a constant number of
statements (the workflows, their tasks and their first events, one insert each:
``Store.insert_rows`` and ``Store.insert_many``).

Runs inside the caller's transaction, so a subject (the video row) and its workflow
appear together or not at all. Roots are queued at once; the rest wait on dependencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from reelwatch.database import utcnow
from reelwatch.engine import states
from reelwatch.engine.queue.events import events_batched, iso, notify_new_work, record_event
from reelwatch.engine.rows import TASKS, WORKFLOWS, WorkflowRow
from reelwatch.engine.schema import Task
from reelwatch.engine.spec import TaskSpec, WorkflowSpec
from reelwatch.engine.store import store_for


@dataclass(frozen=True)
class WorkflowStart:
    """One workflow to start: ``origin`` describes what started it (the upload) on the
    first event of its timeline; ``not_before`` holds its roots until then (an upload
    accepted during maintenance); lower ``priority`` runs first."""

    spec: WorkflowSpec
    subject_id: str | None = None
    input: dict[str, Any] | None = None
    priority: int = 0
    origin: dict[str, Any] | None = None
    not_before: datetime | None = None


def start_workflow(
    session: Session,
    spec: WorkflowSpec,
    *,
    subject_id: str | None = None,
    input: dict[str, Any] | None = None,
    priority: int = 0,
    origin: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> WorkflowRow:
    """Insert a workflow with its tasks (``WorkflowStart`` says what each option means)."""
    start = WorkflowStart(spec, subject_id, input, priority, origin, not_before)
    return start_workflows(session, [start])[0]


def start_workflows(session: Session, starts: Sequence[WorkflowStart]) -> list[WorkflowRow]:
    """Insert many workflows with their tasks and first events, in the order given: one
    statement for the workflows, one for the tasks, one for the events (a few more on
    SQLite, and a page of 1,000 rows per statement on PostgreSQL)."""
    if not starts:
        return []
    now = utcnow()
    values = [_workflow_values(start, now) for start in starts]
    store = store_for(session)
    inserted = store.insert_rows(session, WORKFLOWS, values, (WORKFLOWS.c.id,))
    workflows = [
        WorkflowRow(row.id, **{name: row_values[name] for name in _WORKFLOW_FIELDS})
        for row, row_values in zip(inserted, values, strict=True)
    ]
    run_ats = [max(now, start.not_before) if start.not_before else now for start in starts]
    store.insert_many(
        session,
        TASKS,
        [
            _task_values(workflow.id, task, start.priority, run_at, now)
            for start, workflow, run_at in zip(starts, workflows, run_ats, strict=True)
            for task in start.spec.tasks
        ],
    )
    with events_batched(session):
        for start, workflow, run_at in zip(starts, workflows, run_ats, strict=True):
            record_event(
                session,
                "workflow_started",
                workflow,
                at=now,
                data={
                    **(start.origin or {}),
                    "tasks": [task.name for task in start.spec.tasks],
                    **({"held_until": iso(run_at)} if run_at > now else {}),
                },
            )
            for task in start.spec.tasks:
                if not task.depends_on:  # a root: queued at once
                    record_event(session, "task_queued", workflow, task=NewTask(task.name), at=now)
    notify_new_work(session)
    return workflows


@dataclass(frozen=True)
class NewTask:
    """A task just inserted, as its first event records it."""

    name: str
    attempt: int = 0
    worker_id: str | None = None


_WORKFLOW_FIELDS = ("name", "subject_id", "state", "run", "input")


def _workflow_values(start: WorkflowStart, now: datetime) -> dict[str, Any]:
    return {
        "name": start.spec.name,
        "subject_id": start.subject_id,
        "state": states.WF_RUNNING,
        "run": 1,
        "input": start.input or {},
        "created_at": now,
    }


def _task_values(
    workflow_id: int, task: TaskSpec, priority: int, run_at: datetime, now: datetime
) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "name": task.name,
        "kind": task.kind,
        "params": dict(task.params),
        "depends_on": list(task.depends_on),
        "weight": task.weight,
        "timeout_s": task.timeout_s,
        "state": states.WAITING if task.depends_on else states.QUEUED,
        "queue": task.queue,
        "priority": task.priority + priority,
        "attempt": 0,
        "attempt_floor": 0,
        "progress": 0.0,
        "run_at": run_at,
        "created_at": now,
    }


def release_held_tasks(session: Session, held_until: datetime, now: datetime) -> int:
    """Make the first attempts held until ``held_until`` due now (the maintenance that
    held them ended early); returns how many."""
    released = session.execute(
        update(Task)
        .where(Task.state == states.QUEUED, Task.attempt == 0, Task.run_at == held_until)
        .values(run_at=now)
    )
    if released.rowcount:  # type: ignore[attr-defined]
        notify_new_work(session)
    return int(released.rowcount)  # type: ignore[attr-defined]
