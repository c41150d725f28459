"""The durable queue on SQLite and PostgreSQL: claims, leases, retries, the audit trail."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select, update

from reelwatch.database import Database, utcnow
from reelwatch.db.models import Event, Task, Workflow
from reelwatch.engine import queue, states
from reelwatch.engine.maintenance import expire_stale_leases
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow
from reelwatch.failures import RETRY_POLICY, FailureCode, TaskFailure


def _noop(ctx: TaskContext) -> dict[str, Any]:
    return {"ok": True}


DIAMOND = register_workflow(
    WorkflowSpec(
        "test_diamond",
        (
            TaskSpec("a", _noop),
            TaskSpec("b", _noop, depends_on=("a",)),
            TaskSpec("c", _noop, depends_on=("a",)),
            TaskSpec("d", _noop, depends_on=("b", "c")),
        ),
        retry=RETRY_POLICY,
    )
)
SINGLE = register_workflow(
    WorkflowSpec("test_single", (TaskSpec("only", _noop),), retry=RETRY_POLICY)
)


def start(db: Database, spec: WorkflowSpec = DIAMOND, subject: str | None = None) -> int:
    with db.write() as session:
        return queue.start_workflow(session, spec, subject_id=subject).id


def task_states(db: Database, workflow_id: int) -> dict[str, str]:
    with db.read() as session:
        rows = session.execute(select(Task.name, Task.state).where(Task.workflow_id == workflow_id))
        return {name: state for name, state in rows}


def event_kinds(db: Database, workflow_id: int) -> list[tuple[str, str | None]]:
    with db.read() as session:
        rows = session.execute(
            select(Event.kind, Event.task)
            .where(Event.workflow_id == workflow_id)
            .order_by(Event.id)
        )
        return [(kind, task) for kind, task in rows]


def claim(db: Database, worker: str = "w1", lease_s: float = 30) -> queue.ClaimedTask:
    claimed = queue.claim_next_task(db, worker, lease_s=lease_s)
    assert claimed is not None
    return claimed


def test_start_queues_roots_and_records_events(db: Database) -> None:
    workflow_id = start(db)
    assert task_states(db, workflow_id) == {
        "a": "queued",
        "b": "waiting",
        "c": "waiting",
        "d": "waiting",
    }
    assert event_kinds(db, workflow_id) == [("workflow_started", None), ("task_queued", "a")]


def test_dependencies_run_in_order_and_finish_the_workflow(db: Database) -> None:
    workflow_id = start(db)
    order = []
    while (claimed := queue.claim_next_task(db, "w1", lease_s=30)) is not None:
        order.append(claimed.name)
        assert queue.complete_task(db, claimed, {"from": claimed.name})
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]
    with db.read() as session:
        assert session.get_one(Workflow, workflow_id).state == states.WF_SUCCEEDED
    kinds = [kind for kind, _ in event_kinds(db, workflow_id)]
    assert kinds.count("task_succeeded") == 4 and kinds[-1] == "workflow_succeeded"


def test_concurrent_claims_never_hand_out_a_task_twice(db: Database) -> None:
    workflow_ids = [start(db, SINGLE) for _ in range(40)]
    claimed: list[int] = []
    lock = threading.Lock()

    def drain(worker: str) -> None:
        while (task := queue.claim_next_task(db, worker, lease_s=30)) is not None:
            with lock:
                claimed.append(task.id)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(workflow_ids)
    assert max(Counter(claimed).values()) == 1


def test_recoverable_failure_is_retried_with_backoff_then_gives_up(db: Database) -> None:
    workflow_id = start(db, SINGLE)
    failure = TaskFailure(FailureCode.FFMPEG_CRASHED, "killed by SIGSEGV")
    max_attempts = failure.kind.max_attempts
    for attempt in range(1, max_attempts + 1):
        claimed = claim(db)
        assert claimed.attempt == attempt
        outcome = queue.fail_task(db, claimed, failure, backoff_scale=1.0)
        if attempt < max_attempts:
            assert outcome == states.QUEUED
            assert queue.claim_next_task(db, "w1", lease_s=30) is None, "backoff not honoured"
            with db.write() as session:  # fast-forward the clock for the next attempt
                session.execute(update(Task).values(run_at=utcnow()))
    assert outcome == states.FAILED
    with db.read() as session:
        workflow = session.get_one(Workflow, workflow_id)
        assert workflow.state == states.WF_FAILED
    kinds = [kind for kind, _ in event_kinds(db, workflow_id)]
    assert kinds.count("retry_scheduled") == max_attempts - 1
    assert kinds.count("task_failed") == max_attempts
    assert kinds[-1] == "workflow_failed"


def test_each_kind_of_failure_spends_its_own_retry_budget(db: Database) -> None:
    """A full disk three times, then the worker killed: still retried, because only the
    kills count against worker_lost's budget (the chaos suite's finding)."""
    workflow_id = start(db, SINGLE)
    disk_full = TaskFailure(FailureCode.DISK_FULL, "no space left")
    worker_lost = TaskFailure(FailureCode.WORKER_LOST, "lease expired")
    for failure in [disk_full] * 3 + [worker_lost] * (worker_lost.kind.max_attempts - 1):
        assert queue.fail_task(db, claim(db), failure, backoff_scale=0) == states.QUEUED
    outcome = queue.fail_task(db, claim(db), worker_lost, backoff_scale=0)
    assert outcome == states.FAILED, "worker_lost's own budget is spent"
    with db.read() as session:
        ended = session.scalars(
            select(Event.data).where(
                Event.workflow_id == workflow_id, Event.kind == "workflow_failed"
            )
        ).one()
    assert ended["message"] == "lease expired (gave up after 8 attempts)"


def test_permanent_failure_fails_once_and_cancels_the_rest(db: Database) -> None:
    workflow_id = start(db)
    queue.complete_task(db, claim(db), {})
    first = claim(db)
    second = claim(db, "w2")
    outcome = queue.fail_task(db, first, TaskFailure(FailureCode.INPUT_INVALID, "bad input"))
    assert outcome == states.FAILED
    assert task_states(db, workflow_id) == {
        "a": "succeeded",
        first.name: "failed",
        second.name: "cancelled",
        "d": "cancelled",
    }
    # The sibling's worker finds out at its next heartbeat and cannot complete.
    assert not queue.renew_lease(db, second, lease_s=30)
    assert not queue.complete_task(db, second, {})


def test_expired_lease_is_rescued_as_worker_lost_and_fences_the_old_worker(
    db: Database,
) -> None:
    workflow_id = start(db, SINGLE)
    lost = claim(db, "doomed", lease_s=30)
    assert expire_stale_leases(db) == 0, "a live lease must not be rescued"
    with db.write() as session:
        session.execute(update(Task).values(lease_expires_at=utcnow()))
    assert expire_stale_leases(db, backoff_scale=0) == 1
    rerun = claim(db, "survivor")
    assert rerun.id == lost.id and rerun.attempt == 2
    assert not queue.complete_task(db, lost, {}), "the old worker was fenced out"
    assert queue.complete_task(db, rerun, {})
    kinds = event_kinds(db, workflow_id)
    assert ("lease_expired", "only") in kinds
    with db.read() as session:
        failed = session.scalar(select(Event).where(Event.kind == "task_failed"))
        assert failed is not None and failed.data["code"] == "worker_lost"


def test_heartbeat_keeps_the_lease_and_records_progress_milestones(db: Database) -> None:
    workflow_id = start(db, SINGLE)
    claimed = claim(db, lease_s=1)
    assert queue.renew_lease(db, claimed, lease_s=30, progress=0.6)
    assert expire_stale_leases(db) == 0
    milestones = [kind for kind, _ in event_kinds(db, workflow_id) if kind == "task_progress"]
    assert len(milestones) == 2  # 25 % and 50 %


def test_failed_workflow_restarts_from_the_failed_task(db: Database) -> None:
    workflow_id = start(db)
    queue.complete_task(db, claim(db), {})
    queue.fail_task(db, claim(db), TaskFailure(FailureCode.INPUT_INVALID, "bad"))
    assert queue.restart_workflow(db, workflow_id, requested_by="admin@localhost")
    assert not queue.restart_workflow(db, workflow_id, requested_by="twice")
    states_now = task_states(db, workflow_id)
    assert states_now["a"] == "succeeded"
    assert sorted(states_now[n] for n in "bc") == ["queued", "queued"]
    while (claimed := queue.claim_next_task(db, "w1", lease_s=30)) is not None:
        queue.complete_task(db, claimed, {})
    with db.read() as session:
        assert session.get_one(Workflow, workflow_id).state == states.WF_SUCCEEDED


def test_released_task_is_queued_again_without_spending_an_attempt(db: Database) -> None:
    start(db, SINGLE)
    first = claim(db)
    assert queue.release_task(db, first, reason="shutdown")
    again = claim(db)
    assert again.attempt == 1


@pytest.mark.parametrize("field", ["worker_id", "attempt"])
def test_completion_is_fenced_by_worker_and_attempt(db: Database, field: str) -> None:
    start(db, SINGLE)
    claimed = claim(db)
    forged = queue.ClaimedTask(
        **{
            **claimed.__dict__,
            field: "someone-else" if field == "worker_id" else claimed.attempt + 1,
        }
    )
    assert not queue.complete_task(db, forged, {})
    assert queue.complete_task(db, claimed, {})
