"""The durable queue: instantiate workflows, claim tasks with leases, record outcomes.

Every function here is one transaction that changes task or workflow state, writes the
checkpoint events for it and lets the workflow's observer update its subject, so the
timeline can never disagree with the state. Completions and failures are fenced by
(worker, attempt): a worker that lost its lease can no longer change anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Table, bindparam, exists, insert, select, text, update
from sqlalchemy.orm import Session

from reelwatch.db.database import Database, retry_on_conflict, utcnow
from reelwatch.engine import rows, states
from reelwatch.engine.failures import DEFAULT_POLICY, RetryPolicy, TaskFailure
from reelwatch.engine.rows import TASK_COLUMNS, TASKS, TaskRow, WorkflowRow
from reelwatch.engine.schema import Event, Task, Workflow
from reelwatch.engine.spec import (
    TaskSpec,
    TaskView,
    WorkflowObserver,
    WorkflowSpec,
    WorkflowView,
    registered_workflows,
    workflow_spec,
)

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


_INSERT_EVENT = insert(cast(Table, Event.__table__))
_EVENT_BUFFER = "reelwatch_event_buffer"


def record_event(
    session: Session,
    kind: str,
    workflow: WorkflowView,
    *,
    task: TaskView | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Write a checkpoint in the session's transaction: a plain INSERT at once (the unit
    of work cost more than everything else a task's transactions do), or, inside
    ``_events_batched``, one INSERT for them all at its end."""
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
        session.execute(_INSERT_EVENT, values)


@contextmanager
def _events_batched(session: Session) -> Iterator[None]:
    """Insert the events recorded inside (observers' included) together at the end, in
    the order they were recorded. Nothing inside may read the events."""
    buffer: list[dict[str, Any]] = []
    session.info[_EVENT_BUFFER] = buffer
    try:
        yield
    finally:
        del session.info[_EVENT_BUFFER]
    if len(buffer) > 1 and session.get_bind().dialect.name == "postgresql":
        # One statement for the whole batch: psycopg's executemany is one INSERT per
        # row, and a multi-row VALUES is parsed afresh for every batch size.
        columns = {name: [values[name] for values in buffer] for name in buffer[0]}
        columns["data"] = [json.dumps(data) for data in columns["data"]]
        session.execute(_INSERT_EVENTS_UNNEST, columns)
    elif buffer:
        session.execute(_INSERT_EVENT, buffer)


_INSERT_EVENTS_UNNEST = text(
    "INSERT INTO events (at, kind, workflow_id, subject_id, task, attempt, worker, data) "
    "SELECT at, kind, workflow_id, subject_id, task, attempt, worker, data "
    "FROM unnest(CAST(:at AS timestamp[]), CAST(:kind AS varchar[]), "
    "CAST(:workflow_id AS bigint[]), CAST(:subject_id AS varchar[]), "
    "CAST(:task AS varchar[]), CAST(:attempt AS integer[]), CAST(:worker AS varchar[]), "
    "CAST(:data AS json[])) WITH ORDINALITY "
    "AS batch(at, kind, workflow_id, subject_id, task, attempt, worker, data, position) "
    "ORDER BY position"  # ids in the order the events were recorded
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
) -> WorkflowRow:
    """Insert a workflow with its tasks; roots are queued, the rest wait on dependencies.

    Runs inside the caller's transaction so the subject (the video row) and its
    workflow appear together or not at all. ``origin`` describes what started it (the
    upload) on the first event of the timeline. ``not_before`` holds the roots until
    then (an upload accepted during maintenance); lower ``priority`` runs first.
    """
    now = utcnow()
    run_at = max(now, not_before) if not_before else now
    workflow = WorkflowRow(
        id=0,
        name=spec.name,
        subject_id=subject_id,
        state=states.WF_RUNNING,
        run=1,
        input=input or {},
    )
    workflow_id = session.execute(
        _INSERT_WORKFLOW,
        {**_values_of(workflow), "created_at": now},
    ).scalar_one()
    workflow = replace(workflow, id=workflow_id)
    tasks = session.execute(
        _INSERT_TASKS,
        [_task_values(workflow_id, task, priority, run_at, now) for task in spec.tasks],
    )
    with _events_batched(session):
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
        for task in (TaskRow(*row) for row in tasks):
            if task.state == states.QUEUED:
                record_event(session, "task_queued", workflow, task=task, at=now)
    notify_new_work(session)
    return workflow


_INSERT_WORKFLOW = insert(rows.WORKFLOWS).returning(rows.WORKFLOWS.c.id)
_INSERT_TASKS = insert(TASKS).returning(*TASK_COLUMNS, sort_by_parameter_order=True)


def _values_of(workflow: WorkflowRow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "subject_id": workflow.subject_id,
        "state": workflow.state,
        "run": workflow.run,
        "input": workflow.input,
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


def _claim_statement(*, same_kind: bool) -> Any:
    """UPDATE … RETURNING of the most urgent due tasks (``limit`` of them, of ``kind``
    when ``same_kind``). On PostgreSQL the inner SELECT skips rows other workers are
    claiming right now; on SQLite the immediate transaction makes it exclusive."""
    due = select(TASKS.c.id).where(
        TASKS.c.state == states.QUEUED,
        TASKS.c.queue.in_(bindparam("queues", expanding=True)),
        TASKS.c.run_at <= bindparam("now"),
    )
    if same_kind:
        due = due.where(TASKS.c.kind == bindparam("batch_kind"))
    due = (
        due.order_by(TASKS.c.priority, TASKS.c.run_at, TASKS.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
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


_CLAIM = _claim_statement(same_kind=False)
_CLAIM_SAME_KIND = _claim_statement(same_kind=True)


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


def claim_next_task(
    db: Database, worker_id: str, *, lease_s: float, queues: Iterable[str] = ("default",)
) -> ClaimedTask | None:
    """Lease the most urgent due task to ``worker_id``."""
    claimed = claim_tasks(db, ClaimRequest(worker_id, lease_s, tuple(queues)))
    return claimed[0] if claimed else None


@retry_on_conflict
def claim_tasks(db: Database, request: ClaimRequest) -> list[ClaimedTask]:
    """Lease what ``request`` asks for, in the order to run it; [] when nothing is due."""
    if db.is_sqlite and not has_due_task(db, request.queues):
        return []  # spare SQLite's single write lock when there is nothing to claim
    with db.write() as session:
        return _claim(session, request)


def _claim(session: Session, request: ClaimRequest) -> list[ClaimedTask]:
    now = utcnow()
    params: dict[str, Any] = {
        "queues": list(request.queues),
        "now": now,
        "worker_id": request.worker_id,
        "lease_expires_at": now + timedelta(seconds=request.lease_s),
        "limit": 1,
    }
    claimed = [TaskRow(*row) for row in session.execute(_CLAIM, params)]
    if not claimed:
        return []
    kind = claimed[0].kind
    if request.batch > 1 and kind in request.quick_kinds:
        more = session.execute(
            _CLAIM_SAME_KIND, {**params, "batch_kind": kind, "limit": request.batch - 1}
        )
        claimed += sorted((TaskRow(*row) for row in more), key=_urgency)
    workflows = rows.workflow_rows(session, (task.workflow_id for task in claimed))
    with _events_batched(session):
        for task in claimed:
            workflow = workflows[task.workflow_id]  # the foreign key guarantees it
            record_event(session, "task_started", workflow, task=task, at=now)
            _observer(workflow).task_started(session, workflow, task)
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
    with _events_batched(session):
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
    task = next((t for t in tasks if _holds(t, completion.claim)), None)
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
    observer = _observer(workflow)
    observer.task_succeeded(session, workflow, task, output)
    observer.task_progressed(session, workflow, tasks)
    unblocked = _unblocked(tasks) if workflow.state == states.WF_RUNNING else []
    if unblocked:
        writes.queue(unblocked, now)
        for dependent in unblocked:
            record_event(session, "task_queued", workflow, task=dependent, at=now)
        notify_new_work(session)
    if all(t.state == states.SUCCEEDED for t in tasks):
        writes.succeed_workflow(workflow)
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
    claim was fenced out.

    What is recorded (events, the video's error, e-mails) is shown to users, so it
    carries no server path; the caller logs the full text."""
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
        policy = _policy(workflow)
        failure = failure.rewritten(policy.redact)
        recoverable = policy.rule_for(failure.code).recoverable
        record_event(
            session,
            "task_failed",
            workflow,
            task=task,
            at=now,
            data={
                "code": str(failure.code),
                "message": failure.message,
                "recoverable": recoverable,
                "detail": failure.detail[-2000:],
            },
        )
        task.error_code, task.error_message = str(failure.code), failure.message
        task.worker_id, task.lease_expires_at = None, None
        attempts_used = task.attempt - task.attempt_floor
        # Each kind of failure spends its own budget: a video that met a full disk three
        # times still has its worker_lost retries (within the policy's cap in all).
        like_this = _failures_with_code(session, task, str(failure.code))
        if policy.retries(failure.code, failures_with_code=like_this, attempts_used=attempts_used):
            delay = policy.rule_for(failure.code).retry_delay(attempts_used, backoff_scale)
            _schedule_retry(session, workflow, task, failure, now, delay)
            return states.QUEUED
        if recoverable:
            failure = failure.with_message(
                f"{failure.message} (gave up after {attempts_used} attempts)"
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
    delay: float,
) -> None:
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
            "code": str(failure.code),
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
        data={"code": str(failure.code), "message": failure.message},
    )
    _observer(workflow).workflow_failed(session, workflow, failure)


@retry_on_conflict
def wake_dependency_waiters(db: Database, codes: Iterable[str] | None = None) -> int:
    """Make tasks that were backing off after one of ``codes`` (a dependency was down:
    ``RetryPolicy.dependency_codes``; default: those of every registered workflow) due now."""
    codes = list(dependency_codes(registered_workflows()) if codes is None else codes)
    if not codes:
        return 0
    now = utcnow()
    with db.write() as session:
        woken = session.execute(
            update(Task)
            .where(
                Task.state == states.QUEUED,
                Task.run_at > now,
                Task.error_code.in_(codes),
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
        for dependent in _unblocked(tasks):
            dependent.state, dependent.run_at = states.QUEUED, now
            record_event(session, "task_queued", workflow, task=dependent, at=now)
        _observer(workflow).workflow_restarted(session, workflow)
        notify_new_work(session)
        return True


class _Node(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def depends_on(self) -> list[str]: ...


NodeT = TypeVar("NodeT", bound=_Node)


def _unblocked(tasks: Sequence[NodeT]) -> list[NodeT]:
    """The waiting tasks whose dependencies have all succeeded."""
    done = {t.name for t in tasks if t.state == states.SUCCEEDED}
    return [t for t in tasks if t.state == states.WAITING and set(t.depends_on) <= done]


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


def _holds(task: TaskRow, claim: ClaimedTask) -> bool:
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


def dependency_codes(specs: Mapping[str, WorkflowSpec]) -> set[str]:
    """The failures that mean a dependency was down, in these workflows' policies."""
    return {code for spec in specs.values() for code in spec.retry.dependency_codes}


def _policy(workflow: WorkflowView) -> RetryPolicy:
    try:
        return workflow_spec(workflow.name).retry
    except LookupError:  # a workflow this process does not declare: the default rules
        return DEFAULT_POLICY


def _observer(workflow: WorkflowView) -> WorkflowObserver:
    try:
        return workflow_spec(workflow.name).observer
    except LookupError:  # a workflow this process does not declare: nothing to update
        return WorkflowObserver()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None
