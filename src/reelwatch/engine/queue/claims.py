"""The hot path: lease due tasks to a worker, renew the lease, record successes.

A claim and a batch of completions are each one transaction of prebuilt Core statements
over plain rows (``engine.rows``); a busy worker records its last results and claims its
next tasks in the same one (``complete_and_claim``). Completions are fenced by (worker,
attempt): a worker that lost its lease can no longer change anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.database import Database, retry_on_conflict, utcnow
from reelwatch.engine import rows, states
from reelwatch.engine.queue.events import events_batched, notify_new_work, record_event
from reelwatch.engine.queue.workflows import (
    fenced_task,
    fenced_update,
    holds,
    lock_workflow,
    observer_of,
    tasks_of,
    unblocked,
)
from reelwatch.engine.rows import TaskRow, WorkflowRow
from reelwatch.engine.schema import Task, Workflow
from reelwatch.engine.store import store_for, store_of
from reelwatch.engine.store.statements import DUE_TASK

PROGRESS_MILESTONES = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class ClaimedTask:
    """A task leased to one worker for one attempt."""

    id: int
    workflow_id: int
    workflow_name: str
    subject_id: str | None
    workflow_input: dict[str, Any]
    name: str
    kind: str
    params: dict[str, Any]
    depends_on: tuple[str, ...]
    attempt: int
    worker_id: str
    timeout_s: float


@dataclass(frozen=True)
class ClaimRequest:
    """What a worker asks for: the most urgent due task of one of its ``queues``, leased
    for ``lease_s``; when that task's kind is one of ``quick_kinds``, up to ``batch``
    due tasks of that kind (for tasks shorter than a claim's round trip)."""

    worker_id: str
    lease_s: float
    queues: tuple[str, ...] = ("default",)
    batch: int = 1
    quick_kinds: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Completion:
    """A task that succeeded, waiting to be recorded."""

    claim: ClaimedTask
    output: dict[str, Any]
    cpu_s: float | None = None


def has_due_task(db: Database, queues: Iterable[str]) -> bool:
    with db.read() as session:
        return bool(session.scalar(DUE_TASK, {"queues": list(queues), "now": utcnow()}))


def next_due_at(db: Database, queues: Iterable[str]) -> datetime | None:
    """When the earliest queued task becomes claimable (a scheduled retry, say)."""
    with db.read() as session:
        return session.scalar(
            select(Task.run_at)
            .where(Task.state == states.QUEUED, Task.queue.in_(list(queues)))
            .order_by(Task.run_at)
            .limit(1)
        )


def claim_next_task(
    db: Database, worker_id: str, *, lease_s: float, queues: Iterable[str] = ("default",)
) -> ClaimedTask | None:
    """Lease the most urgent due task to ``worker_id``."""
    claimed = claim_tasks(db, ClaimRequest(worker_id, lease_s, tuple(queues)))
    return claimed[0] if claimed else None


@retry_on_conflict
def claim_tasks(db: Database, request: ClaimRequest) -> list[ClaimedTask]:
    """Lease what ``request`` asks for, in the order to run it; [] when nothing is due."""
    if not store_of(db).worth_claiming(db, request.queues):
        return []
    with db.write() as session:
        return _claim(session, request)


def _claim(session: Session, request: ClaimRequest) -> list[ClaimedTask]:
    now = utcnow()
    store = store_for(session)
    params: dict[str, Any] = {
        "queues": list(request.queues),
        "now": now,
        "owner": request.worker_id,
        "lease_expires_at": now + timedelta(seconds=request.lease_s),
        "limit": 1,
    }
    claimed = [TaskRow(*row) for row in session.execute(store.claim, params)]
    if not claimed:
        return []
    kind = claimed[0].kind
    if request.batch > 1 and kind in request.quick_kinds:
        more = session.execute(
            store.claim_same_kind, {**params, "batch_kind": kind, "limit": request.batch - 1}
        )
        claimed += sorted((TaskRow(*row) for row in more), key=_urgency)
    workflows = rows.workflow_rows(session, (task.workflow_id for task in claimed))
    with events_batched(session):
        for task in claimed:
            workflow = workflows[task.workflow_id]  # the foreign key guarantees it
            record_event(session, "task_started", workflow, task=task, at=now)
            observer_of(workflow).task_started(session, workflow, task)
    return [claim_of(task, workflows[task.workflow_id]) for task in claimed]


def _urgency(task: TaskRow) -> tuple[int, datetime, int]:
    """The claim's order (RETURNING has none of its own)."""
    return task.priority, task.run_at, task.id


@retry_on_conflict
def renew_lease(
    db: Database, claim: ClaimedTask, *, lease_s: float, progress: float | None = None
) -> bool:
    """Extend the lease (and record progress); False when the lease is no longer ours,
    because it expired and was rescued, or the workflow was cancelled or deleted."""
    now = utcnow()
    with db.write() as session:
        if progress is None:
            renewed = session.execute(
                fenced_update(claim).values(lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return bool(renewed.rowcount)  # type: ignore[attr-defined]
        workflow = lock_workflow(session, claim.workflow_id)
        task = fenced_task(session, claim)
        if workflow is None or task is None:
            return False
        task.lease_expires_at = now + timedelta(seconds=lease_s)
        _record_milestones(session, workflow, task, task.progress, progress)
        task.progress = progress
        observer_of(workflow).task_progressed(session, workflow, tasks_of(session, workflow))
        return True


@retry_on_conflict
def record_checkpoint(db: Database, claim: ClaimedTask, kind: str, data: dict[str, Any]) -> bool:
    """A point the handler reached mid-run (``kind``: a video became playable), on the
    timeline and told to the observer in one transaction; False, and nothing recorded,
    when the lease is no longer ours."""
    with db.write() as session:
        workflow = lock_workflow(session, claim.workflow_id)
        task = fenced_task(session, claim)
        if workflow is None or task is None:
            return False
        record_event(session, kind, workflow, task=task, data=data)
        observer_of(workflow).task_checkpointed(session, workflow, task, kind, data)
        return True


def _record_milestones(
    session: Session, workflow: Workflow, task: Task, before: float, after: float
) -> None:
    for milestone in PROGRESS_MILESTONES:
        if before < milestone <= after:
            record_event(
                session, "task_progress", workflow, task=task, data={"progress": milestone}
            )


@retry_on_conflict
def complete_task(
    db: Database,
    claim: ClaimedTask,
    output: dict[str, Any] | None,
    *,
    cpu_s: float | None = None,
) -> bool:
    """Record success, queue the dependents it unblocks, finish the workflow when all
    tasks are done. False when the claim was fenced out (lease lost). ``cpu_s``, the CPU
    time the task cost (its ffmpeg included), goes on the event for the capacity estimate."""
    with db.write() as session:
        return _complete(session, [Completion(claim, output or {}, cpu_s)])[0]


@retry_on_conflict
def complete_and_claim(
    db: Database, completions: Sequence[Completion], request: ClaimRequest | None
) -> list[ClaimedTask]:
    """Record ``completions`` and claim what ``request`` asks for (if anything) in one
    transaction: a busy worker pays one commit per batch, not two per task."""
    with db.write() as session:
        _complete(session, completions)
        return _claim(session, request) if request else []


def _complete(session: Session, completions: Sequence[Completion]) -> list[bool]:
    """Whether each completion was recorded (False: its claim was fenced out)."""
    if not completions:
        return []
    workflow_ids = [completion.claim.workflow_id for completion in completions]
    # Locking the workflows first serialises their tasks' outcomes, so two siblings
    # finishing at once cannot both miss that the other finished.
    workflows = rows.workflow_rows(session, workflow_ids, lock=True)
    now = utcnow()  # after the lock: the timeline's order is the commit order
    # One query for the tasks and their siblings (the progress and the dependents need
    # them all); the fence is checked on the locked rows.
    tasks = rows.locked_task_rows(session, workflow_ids)
    writes = rows.TaskWrites()
    with events_batched(session):
        recorded = [
            _complete_one(
                session,
                writes,
                completion,
                workflows.get(completion.claim.workflow_id),
                tasks.get(completion.claim.workflow_id, []),
                now,
            )
            for completion in completions
        ]
    writes.apply(session, now)
    return recorded


def _complete_one(
    session: Session,
    writes: rows.TaskWrites,
    completion: Completion,
    workflow: WorkflowRow | None,
    tasks: list[TaskRow],
    now: datetime,
) -> bool:
    task = next((t for t in tasks if holds(t, completion.claim)), None)
    if workflow is None or task is None:
        return False
    output = completion.output
    writes.succeed(task, output)
    elapsed = (now - task.started_at).total_seconds() if task.started_at else None
    record_event(
        session,
        "task_succeeded",
        workflow,
        task=task,
        at=now,
        data={"elapsed_s": elapsed, "cpu_s": completion.cpu_s, **output},
    )
    observer = observer_of(workflow)
    observer.task_succeeded(session, workflow, task, output)
    observer.task_progressed(session, workflow, tasks)
    next_tasks = unblocked(tasks) if workflow.state == states.WF_RUNNING else []
    if next_tasks:
        writes.queue(next_tasks, now)
        for dependent in next_tasks:
            record_event(session, "task_queued", workflow, task=dependent, at=now)
        notify_new_work(session)
    if all(t.state == states.SUCCEEDED for t in tasks):
        writes.succeed_workflow(workflow)
        record_event(session, "workflow_succeeded", workflow, at=now)
        observer.workflow_succeeded(session, workflow)
    return True


def claim_of(task: TaskRow, workflow: WorkflowRow) -> ClaimedTask:
    """The claim a worker holds on ``task`` (as its row stands now)."""
    return ClaimedTask(
        id=task.id,
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        subject_id=workflow.subject_id,
        workflow_input=dict(workflow.input),
        name=task.name,
        kind=task.kind,
        params=dict(task.params),
        depends_on=tuple(task.depends_on),
        attempt=task.attempt,
        worker_id=task.worker_id or "",
        timeout_s=task.timeout_s,
    )
