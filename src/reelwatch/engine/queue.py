"""The durable queue: instantiate workflows, claim tasks with leases, record outcomes.

Every function here is one transaction that changes task or workflow state, writes the
checkpoint events for it and lets the workflow's observer update its subject, so the
timeline can never disagree with the state. Completions and failures are fenced by
(worker, attempt): a worker that lost its lease can no longer change anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, insert, select, text, update
from sqlalchemy.orm import Session

from reelwatch.db.database import Database, retry_on_conflict, utcnow
from reelwatch.db.models import Event, Task, Workflow
from reelwatch.engine import states
from reelwatch.engine.spec import WorkflowObserver, WorkflowSpec, workflow_spec
from reelwatch.failures import MAX_ATTEMPTS, FailureCode, TaskFailure

NOTIFY_CHANNEL = "reelwatch_tasks"
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


_INSERT_EVENT = insert(cast(Table, Event.__table__))


def record_event(
    session: Session,
    kind: str,
    workflow: Workflow,
    *,
    task: Task | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    # A plain INSERT now, rather than an ORM object flushed at commit: the unit of work
    # cost more than everything else a task's transactions do.
    session.execute(
        _INSERT_EVENT,
        {
            "at": at or utcnow(),
            "kind": kind,
            "workflow_id": workflow.id,
            "subject_id": workflow.subject_id,
            "task": task.name if task else None,
            "attempt": task.attempt if task else None,
            "worker": task.worker_id if task else None,
            "data": data or {},
        },
    )


def start_workflow(
    session: Session,
    spec: WorkflowSpec,
    *,
    subject_id: str | None = None,
    input: dict[str, Any] | None = None,
    priority: int = 0,
    origin: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> Workflow:
    """Insert a workflow with its tasks; roots are queued, the rest wait on dependencies.

    Runs inside the caller's transaction so the subject (the video row) and its
    workflow appear together or not at all. ``origin`` describes what started it (the
    upload) on the first event of the timeline. ``not_before`` holds the roots until
    then (an upload accepted during maintenance); lower ``priority`` runs first.
    """
    now = utcnow()
    run_at = max(now, not_before) if not_before else now
    workflow = Workflow(
        run=1,
        name=spec.name,
        subject_id=subject_id,
        state=states.WF_RUNNING,
        input=input or {},
        created_at=now,
    )
    session.add(workflow)
    session.flush()
    record_event(
        session,
        "workflow_started",
        workflow,
        at=now,
        data={
            **(origin or {}),
            "tasks": [task.name for task in spec.tasks],
            **({"held_until": _iso(run_at)} if run_at > now else {}),
        },
    )
    for task_spec in spec.tasks:
        task = Task(
            workflow_id=workflow.id,
            name=task_spec.name,
            kind=task_spec.kind,
            params=dict(task_spec.params),
            depends_on=list(task_spec.depends_on),
            weight=task_spec.weight,
            timeout_s=task_spec.timeout_s,
            state=states.WAITING if task_spec.depends_on else states.QUEUED,
            queue=task_spec.queue,
            priority=task_spec.priority + priority,
            attempt=0,
            attempt_floor=0,
            progress=0.0,
            run_at=run_at,
            created_at=now,
        )
        session.add(task)
        if task.state == states.QUEUED:
            record_event(session, "task_queued", workflow, task=task, at=now)
    notify_new_work(session)
    return workflow


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


def notify_new_work(session: Session) -> None:
    """Wake idle workers when this transaction commits (PostgreSQL NOTIFY is
    transactional; SQLite workers notice the commit through ``PRAGMA data_version``)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


# The hot path's statements are built once: building and hashing a statement costs more
# Python than running it, and workers run these for every task.
_DUE_TASK = select(
    exists().where(
        Task.state == states.QUEUED,
        Task.queue.in_(bindparam("queues", expanding=True)),
        Task.run_at <= bindparam("now"),
    )
)
_CLAIM = (
    update(Task)
    .where(
        Task.id
        == select(Task.id)
        .where(
            Task.state == states.QUEUED,
            Task.queue.in_(bindparam("queues", expanding=True)),
            Task.run_at <= bindparam("now"),
        )
        .order_by(Task.priority, Task.run_at, Task.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(
        state=states.RUNNING,
        attempt=Task.attempt + 1,
        worker_id=bindparam("worker_id"),
        lease_expires_at=bindparam("lease_expires_at"),
        started_at=bindparam("now"),
        progress=0.0,
    )
    .returning(Task)
    .execution_options(synchronize_session=False)
)


def has_due_task(db: Database, queues: Iterable[str]) -> bool:
    with db.read() as session:
        return bool(session.scalar(_DUE_TASK, {"queues": list(queues), "now": utcnow()}))


def next_due_at(db: Database, queues: Iterable[str]) -> datetime | None:
    """When the earliest queued task becomes claimable (a scheduled retry, say)."""
    with db.read() as session:
        return session.scalar(
            select(Task.run_at)
            .where(Task.state == states.QUEUED, Task.queue.in_(list(queues)))
            .order_by(Task.run_at)
            .limit(1)
        )


@retry_on_conflict
def claim_next_task(
    db: Database, worker_id: str, *, lease_s: float, queues: Iterable[str] = ("default",)
) -> ClaimedTask | None:
    """Lease the most urgent due task to ``worker_id`` with one UPDATE … RETURNING.

    On PostgreSQL the inner SELECT skips rows other workers are claiming right now; on
    SQLite the immediate transaction makes the statement exclusive.
    """
    queues = list(queues)
    if db.is_sqlite and not has_due_task(db, queues):
        return None  # spare SQLite's single write lock when there is nothing to claim
    now = utcnow()
    params = {
        "queues": queues,
        "now": now,
        "worker_id": worker_id,
        "lease_expires_at": now + timedelta(seconds=lease_s),
    }
    with db.write() as session:
        task = session.scalars(_CLAIM, params).one_or_none()
        if task is None:
            return None
        workflow = session.get_one(Workflow, task.workflow_id)
        record_event(session, "task_started", workflow, task=task, at=now)
        _observer(workflow).task_started(session, workflow, task)
        return _claim_of(task, workflow)


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
                _fenced_update(claim).values(lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return bool(renewed.rowcount)  # type: ignore[attr-defined]
        workflow = _lock_workflow(session, claim.workflow_id)
        task = _fenced_task(session, claim)
        if workflow is None or task is None:
            return False
        task.lease_expires_at = now + timedelta(seconds=lease_s)
        _record_milestones(session, workflow, task, task.progress, progress)
        task.progress = progress
        _observer(workflow).task_progressed(session, workflow, _tasks_of(session, workflow))
        return True


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
        workflow = _lock_workflow(session, claim.workflow_id)
        now = utcnow()  # after the lock: the timeline's order is the commit order
        if workflow is None:
            return False
        # One query for the task and its siblings (the progress and the dependents need
        # them all); the fence is checked on the locked rows.
        tasks = _tasks_of(session, workflow, lock=True)
        task = next((t for t in tasks if _holds(t, claim)), None)
        if task is None:
            return False
        task.state = states.SUCCEEDED
        task.output = output or {}
        task.progress = 1.0
        task.finished_at = now
        task.lease_expires_at = None
        elapsed = (now - task.started_at).total_seconds() if task.started_at else None
        record_event(
            session,
            "task_succeeded",
            workflow,
            task=task,
            at=now,
            data={"elapsed_s": elapsed, "cpu_s": cpu_s, **(output or {})},
        )
        observer = _observer(workflow)
        observer.task_succeeded(session, workflow, task, task.output)
        observer.task_progressed(session, workflow, tasks)
        if _queue_unblocked(session, workflow, tasks, now):
            notify_new_work(session)
        if all(t.state == states.SUCCEEDED for t in tasks):
            workflow.state = states.WF_SUCCEEDED
            workflow.finished_at = now
            record_event(session, "workflow_succeeded", workflow, at=now)
            observer.workflow_succeeded(session, workflow)
        return True


@retry_on_conflict
def fail_task(
    db: Database,
    claim: ClaimedTask,
    failure: TaskFailure,
    *,
    backoff_scale: float = 1.0,
    expired_lease: bool = False,
) -> str | None:
    """Record a failure: schedule a retry when its code is recoverable and attempts
    remain, otherwise fail the workflow. Returns the new task state, or None when the
    claim was fenced out."""
    with db.write() as session:
        workflow = _lock_workflow(session, claim.workflow_id)
        now = utcnow()  # after the lock: the timeline's order is the commit order
        task = _fenced_task(session, claim, expired_before=now if expired_lease else None)
        if workflow is None or task is None:
            return None
        if expired_lease:
            record_event(
                session,
                "lease_expired",
                workflow,
                task=task,
                at=now,
                data={"expired_at": _iso(task.lease_expires_at)},
            )
        kind = failure.kind
        record_event(
            session,
            "task_failed",
            workflow,
            task=task,
            at=now,
            data={
                "code": failure.code.value,
                "message": failure.message,
                "recoverable": kind.recoverable,
                "detail": failure.detail[-2000:],
            },
        )
        task.error_code, task.error_message = failure.code.value, failure.message
        task.worker_id, task.lease_expires_at = None, None
        attempts_used = task.attempt - task.attempt_floor
        # Each kind of failure spends its own budget: a video that met a full disk three
        # times still has its worker_lost retries (within MAX_ATTEMPTS in all).
        like_this = _failures_with_code(session, task, failure.code.value)
        within_budget = like_this < kind.max_attempts and attempts_used < MAX_ATTEMPTS
        if kind.recoverable and within_budget:
            _schedule_retry(session, workflow, task, failure, now, backoff_scale)
            return states.QUEUED
        if kind.recoverable:
            failure = TaskFailure(
                failure.code,
                f"{failure.message} (gave up after {attempts_used} attempts)",
                detail=failure.detail,
            )
        task.state, task.finished_at = states.FAILED, now
        _fail_workflow(session, workflow, failure, now)
        return states.FAILED


def _failures_with_code(session: Session, task: Task, code: str) -> int:
    """How many of the task's attempts since its last manual retry failed with ``code``."""
    failures = session.scalars(
        select(Event.data).where(
            Event.workflow_id == task.workflow_id,
            Event.task == task.name,
            Event.kind == "task_failed",
            Event.attempt > task.attempt_floor,
        )
    )
    return sum(1 for data in failures if data.get("code") == code)


@retry_on_conflict
def release_task(db: Database, claim: ClaimedTask, *, reason: str) -> bool:
    """Hand a task back unfinished (its worker is shutting down): queued again at
    once, and the attempt does not count against its retry budget."""
    with db.write() as session:
        workflow = _lock_workflow(session, claim.workflow_id)
        now = utcnow()  # after the lock: the timeline's order is the commit order
        task = _fenced_task(session, claim)
        if workflow is None or task is None:
            return False
        record_event(session, "task_released", workflow, task=task, at=now, data={"reason": reason})
        task.state, task.run_at, task.progress = states.QUEUED, now, 0.0
        task.worker_id, task.lease_expires_at = None, None
        task.attempt -= 1
        notify_new_work(session)
        return True


def _schedule_retry(
    session: Session,
    workflow: Workflow,
    task: Task,
    failure: TaskFailure,
    now: datetime,
    backoff_scale: float,
) -> None:
    delay = failure.kind.retry_delay(task.attempt - task.attempt_floor, backoff_scale)
    task.state = states.QUEUED
    task.run_at = now + timedelta(seconds=delay)
    task.progress = 0.0
    record_event(
        session,
        "retry_scheduled",
        workflow,
        task=task,
        at=now,
        data={
            "code": failure.code.value,
            "delay_s": round(delay, 3),
            "next_at": _iso(task.run_at),
        },
    )
    _observer(workflow).retry_scheduled(session, workflow, task, failure)
    notify_new_work(session)


def _fail_workflow(
    session: Session, workflow: Workflow, failure: TaskFailure, now: datetime
) -> None:
    for other in _tasks_of(session, workflow):
        if other.state in states.UNFINISHED:
            other.state, other.finished_at = states.CANCELLED, now
            other.worker_id, other.lease_expires_at = None, None
            record_event(session, "task_cancelled", workflow, task=other, at=now)
    workflow.state, workflow.finished_at = states.WF_FAILED, now
    record_event(
        session,
        "workflow_failed",
        workflow,
        at=now,
        data={"code": failure.code.value, "message": failure.message},
    )
    _observer(workflow).workflow_failed(session, workflow, failure)


def find_expired_leases(
    db: Database, *, worker_id: str | None = None, limit: int = 100
) -> list[ClaimedTask]:
    """Running tasks whose lease has run out, or every task held by ``worker_id``
    (a worker its supervisor saw die, which need not wait for the lease)."""
    query = select(Task, Workflow).join(Workflow, Task.workflow_id == Workflow.id)
    query = query.where(Task.state == states.RUNNING)
    if worker_id is None:
        query = query.where(Task.lease_expires_at < utcnow())
    else:
        query = query.where(Task.worker_id == worker_id)
    with db.read() as session:
        rows = session.execute(query.order_by(Task.lease_expires_at).limit(limit)).all()
    return [_claim_of(task, workflow) for task, workflow in rows]


def expire_stale_leases(
    db: Database, *, worker_id: str | None = None, backoff_scale: float = 1.0
) -> int:
    """Re-queue tasks whose worker is gone as ``worker_lost``; safe to run anywhere,
    any number of times, because each rescue is fenced like a completion."""
    rescued = 0
    for claim in find_expired_leases(db, worker_id=worker_id):
        failure = TaskFailure(
            FailureCode.WORKER_LOST,
            f"worker {claim.worker_id} stopped heartbeating during attempt {claim.attempt}",
        )
        if (
            fail_task(
                db, claim, failure, backoff_scale=backoff_scale, expired_lease=worker_id is None
            )
            is not None
        ):
            rescued += 1
    return rescued


DEPENDENCY_CODES = (
    FailureCode.STORAGE_UNAVAILABLE,
    FailureCode.DISK_FULL,
    FailureCode.DEPENDENCY_DOWN,
)


@retry_on_conflict
def wake_dependency_waiters(db: Database) -> int:
    """Make tasks that were backing off because a dependency was down due now."""
    now = utcnow()
    with db.write() as session:
        woken = session.execute(
            update(Task)
            .where(
                Task.state == states.QUEUED,
                Task.run_at > now,
                Task.error_code.in_([code.value for code in DEPENDENCY_CODES]),
            )
            .values(run_at=now)
        )
        if woken.rowcount:  # type: ignore[attr-defined]
            notify_new_work(session)
        return int(woken.rowcount)  # type: ignore[attr-defined]


@retry_on_conflict
def restart_workflow(db: Database, workflow_id: int, *, requested_by: str) -> bool:
    """Re-run a failed workflow from where it failed: succeeded tasks are kept, failed
    and cancelled ones are queued again with a fresh retry budget."""
    now = utcnow()
    with db.write() as session:
        workflow = _lock_workflow(session, workflow_id)
        if workflow is None or workflow.state != states.WF_FAILED:
            return False
        workflow.state, workflow.finished_at = states.WF_RUNNING, None
        workflow.run += 1
        record_event(session, "workflow_restarted", workflow, at=now, data={"by": requested_by})
        tasks = _tasks_of(session, workflow)
        for task in tasks:
            if task.state in (states.FAILED, states.CANCELLED):
                task.state = states.WAITING
                task.attempt_floor = task.attempt
                task.error_code = task.error_message = None
                task.finished_at = None
                task.progress = 0.0
        _queue_unblocked(session, workflow, tasks, now)
        _observer(workflow).workflow_restarted(session, workflow)
        notify_new_work(session)
        return True


def _queue_unblocked(
    session: Session, workflow: Workflow, tasks: list[Task], now: datetime
) -> bool:
    if workflow.state != states.WF_RUNNING:
        return False
    done = {t.name for t in tasks if t.state == states.SUCCEEDED}
    queued = False
    for task in tasks:
        if task.state == states.WAITING and set(task.depends_on) <= done:
            task.state, task.run_at = states.QUEUED, now
            record_event(session, "task_queued", workflow, task=task, at=now)
            queued = True
    return queued


def _record_milestones(
    session: Session, workflow: Workflow, task: Task, before: float, after: float
) -> None:
    for milestone in PROGRESS_MILESTONES:
        if before < milestone <= after:
            record_event(
                session, "task_progress", workflow, task=task, data={"progress": milestone}
            )


def _lock_workflow(session: Session, workflow_id: int) -> Workflow | None:
    # Locking the workflow first serialises its tasks' outcomes, so two siblings
    # finishing at once cannot both miss that the other finished.
    return session.scalars(
        select(Workflow).where(Workflow.id == workflow_id).with_for_update()
    ).one_or_none()


def _fenced_update(claim: ClaimedTask) -> Any:
    return update(Task).where(
        Task.id == claim.id,
        Task.state == states.RUNNING,
        Task.worker_id == claim.worker_id,
        Task.attempt == claim.attempt,
    )


def _fenced_task(
    session: Session, claim: ClaimedTask, *, expired_before: datetime | None = None
) -> Task | None:
    query = select(Task).where(
        Task.id == claim.id,
        Task.state == states.RUNNING,
        Task.worker_id == claim.worker_id,
        Task.attempt == claim.attempt,
    )
    if expired_before is not None:  # a heartbeat may have renewed it since we looked
        query = query.where(Task.lease_expires_at < expired_before)
    return session.scalars(query.with_for_update()).one_or_none()


def _holds(task: Task, claim: ClaimedTask) -> bool:
    """Whether ``claim`` still holds ``task`` (the fence of ``_fenced_update``)."""
    return (
        task.id == claim.id
        and task.state == states.RUNNING
        and task.worker_id == claim.worker_id
        and task.attempt == claim.attempt
    )


def _tasks_of(session: Session, workflow: Workflow, *, lock: bool = False) -> list[Task]:
    query = select(Task).where(Task.workflow_id == workflow.id).order_by(Task.id)
    return list(session.scalars(query.with_for_update() if lock else query))


def _claim_of(task: Task, workflow: Workflow) -> ClaimedTask:
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


def _observer(workflow: Workflow) -> WorkflowObserver:
    try:
        return workflow_spec(workflow.name).observer
    except LookupError:  # a workflow this process does not declare: nothing to update
        return WorkflowObserver()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None
