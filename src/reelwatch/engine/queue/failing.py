"""Off the happy path: failures and their retries, tasks handed back, manual restarts,
and the tasks woken when a dependency is back.

A failure is fenced like a completion. The workflow's ``RetryPolicy`` decides what
follows: a retry after its backoff while the code's budget and the overall cap allow
it, otherwise the workflow fails and its unfinished tasks are cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reelwatch.database import Database, retry_on_conflict, utcnow
from reelwatch.engine import states
from reelwatch.engine.failures import TaskFailure
from reelwatch.engine.queue.claims import ClaimedTask
from reelwatch.engine.queue.events import iso, notify_new_work, record_event
from reelwatch.engine.queue.workflows import (
    dependency_codes,
    fenced_task,
    lock_workflow,
    observer_of,
    policy_of,
    tasks_of,
    unblocked,
)
from reelwatch.engine.schema import Event, Task, Workflow
from reelwatch.engine.spec import registered_workflows


@retry_on_conflict
def fail_task(
    db: Database,
    claim: ClaimedTask,
    failure: TaskFailure,
    *,
    backoff_scale: float = 1.0,
    expired_lease: bool = False,
) -> str | None:
    """Record a failure: schedule a retry when the workflow's policy allows one,
    otherwise fail the workflow. Returns the new task state, or None when the claim was
    fenced out.

    What is recorded (events, the observer's changes) is shown to users, so it goes
    through the policy's ``redact`` first; the caller logs the full text."""
    with db.write() as session:
        workflow = lock_workflow(session, claim.workflow_id)
        now = utcnow()  # after the lock: the timeline's order is the commit order
        task = fenced_task(session, claim, expired_before=now if expired_lease else None)
        if workflow is None or task is None:
            return None
        if expired_lease:
            record_event(
                session,
                "lease_expired",
                workflow,
                task=task,
                at=now,
                data={"expired_at": iso(task.lease_expires_at)},
            )
        policy = policy_of(workflow)
        failure = failure.rewritten(policy.redact)
        code = str(failure.code)
        rule = policy.rule_for(code)
        record_event(
            session,
            "task_failed",
            workflow,
            task=task,
            at=now,
            data={
                "code": code,
                "message": failure.message,
                "recoverable": rule.recoverable,
                "detail": failure.detail[-2000:],
            },
        )
        task.error_code, task.error_message = code, failure.message
        task.worker_id, task.lease_expires_at = None, None
        attempts_used = task.attempt - task.attempt_floor
        # Each kind of failure spends its own budget: a video that met a full disk three
        # times still has its worker_lost retries (within the policy's cap in all).
        like_this = _failures_with_code(session, task, code)
        if policy.retries(code, failures_with_code=like_this, attempts_used=attempts_used):
            delay = rule.retry_delay(attempts_used, backoff_scale)
            _schedule_retry(session, workflow, task, failure, now, delay)
            return states.QUEUED
        if rule.recoverable:
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
        data={"code": str(failure.code), "delay_s": round(delay, 3), "next_at": iso(task.run_at)},
    )
    observer_of(workflow).retry_scheduled(session, workflow, task, failure)
    notify_new_work(session)


def _fail_workflow(
    session: Session, workflow: Workflow, failure: TaskFailure, now: datetime
) -> None:
    for other in tasks_of(session, workflow):
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
    observer_of(workflow).workflow_failed(session, workflow, failure)


@retry_on_conflict
def release_task(db: Database, claim: ClaimedTask, *, reason: str) -> bool:
    """Hand a task back unfinished (its worker is shutting down): queued again at
    once, and the attempt does not count against its retry budget."""
    with db.write() as session:
        workflow = lock_workflow(session, claim.workflow_id)
        now = utcnow()  # after the lock: the timeline's order is the commit order
        task = fenced_task(session, claim)
        if workflow is None or task is None:
            return False
        record_event(session, "task_released", workflow, task=task, at=now, data={"reason": reason})
        task.state, task.run_at, task.progress = states.QUEUED, now, 0.0
        task.worker_id, task.lease_expires_at = None, None
        task.attempt -= 1
        notify_new_work(session)
        return True


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
            .where(Task.state == states.QUEUED, Task.run_at > now, Task.error_code.in_(codes))
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
        workflow = lock_workflow(session, workflow_id)
        if workflow is None or workflow.state != states.WF_FAILED:
            return False
        workflow.state, workflow.finished_at = states.WF_RUNNING, None
        workflow.run += 1
        record_event(session, "workflow_restarted", workflow, at=now, data={"by": requested_by})
        tasks = tasks_of(session, workflow)
        for task in tasks:
            if task.state in (states.FAILED, states.CANCELLED):
                task.state = states.WAITING
                task.attempt_floor = task.attempt
                task.error_code = task.error_message = None
                task.finished_at = None
                task.progress = 0.0
        for dependent in unblocked(tasks):
            dependent.state, dependent.run_at = states.QUEUED, now
            record_event(session, "task_queued", workflow, task=dependent, at=now)
        observer_of(workflow).workflow_restarted(session, workflow)
        notify_new_work(session)
        return True
