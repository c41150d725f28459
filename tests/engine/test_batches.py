"""Batches of quick tasks: claimed together, recorded together, the audit trail intact."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from instance import wait_until
from reelwatch.database import Database
from reelwatch.db.models import Event, Task, Workflow
from reelwatch.engine import queue, states
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow
from reelwatch.engine.worker import (
    BATCH_SIZE,
    PREFLIGHT_INTERVAL_S,
    QUICK_TASK_S,
    Worker,
    WorkerConfig,
)

behaviour: dict[str, Callable[[TaskContext], None]] = {}


def _quick(ctx: TaskContext) -> dict[str, Any]:
    hook = behaviour.get("quick")
    if hook is not None:
        hook(ctx)
    return {"done": True}


def _slow(ctx: TaskContext) -> dict[str, Any]:
    time.sleep(QUICK_TASK_S * 2)  # the task's own duration: slower than a claim
    return {}


QUICK = register_workflow(WorkflowSpec("test_batch_quick", (TaskSpec("quick", _quick),)))
SLOW = register_workflow(WorkflowSpec("test_batch_slow", (TaskSpec("slow", _slow),)))
CHAIN = register_workflow(
    WorkflowSpec(
        "test_batch_chain",
        (TaskSpec("first", _quick), TaskSpec("second", _quick, depends_on=("first",))),
    )
)
TIMELINE = [
    "workflow_started",
    "task_queued",
    "task_started",
    "task_succeeded",
    "workflow_succeeded",
]


def start_many(db: Database, spec: WorkflowSpec, count: int) -> None:
    with db.write() as session:
        for _ in range(count):
            queue.start_workflow(session, spec)


def all_finished(db: Database) -> bool:
    with db.read() as session:
        return not session.scalars(
            select(Workflow.id).where(Workflow.state == states.WF_RUNNING)
        ).first()


def run_worker(db: Database, until: Callable[[], bool], **options: Any) -> Worker:
    worker = Worker(db, WorkerConfig(lease_s=30), **options)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        wait_until(until, timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    return worker


def claims_per_transaction(db: Database) -> Counter[Any]:
    """How many tasks each claim took: a transaction stamps all its events alike."""
    with db.read() as session:
        stamps = session.scalars(select(Event.at).where(Event.kind == "task_started"))
        return Counter(stamps)


def timelines(db: Database) -> dict[int | None, list[str]]:
    with db.read() as session:
        found: dict[int | None, list[str]] = {}
        for workflow_id, kind in session.execute(
            select(Event.workflow_id, Event.kind).order_by(Event.id)
        ):
            found.setdefault(workflow_id, []).append(kind)
        return found


def test_quick_tasks_are_claimed_and_recorded_in_batches(db: Database) -> None:
    start_many(db, QUICK, 3 * BATCH_SIZE)
    worker = run_worker(db, lambda: all_finished(db))
    batches = claims_per_transaction(db)
    # The first task runs alone (its kind is not known to be quick yet); then batches.
    assert max(batches.values()) == BATCH_SIZE
    assert sum(batches.values()) == 3 * BATCH_SIZE
    assert worker.quick_kinds == {"quick"}
    # Every workflow's trail is complete and in order, however its events were written,
    # and a batch's events carry what one-by-one events do.
    assert all(kinds == TIMELINE for kinds in timelines(db).values())
    with db.read() as session:
        succeeded = session.scalars(select(Event).where(Event.kind == "task_succeeded")).all()
    assert {(e.task, e.attempt, e.worker, e.data["done"]) for e in succeeded} == {
        ("quick", 1, worker.id, True)
    }


def test_slow_tasks_are_claimed_one_at_a_time(db: Database) -> None:
    start_many(db, SLOW, 5)
    worker = run_worker(db, lambda: all_finished(db))
    assert set(claims_per_transaction(db).values()) == {1}
    assert not worker.quick_kinds


def test_a_batch_queues_and_claims_the_dependents_it_unblocks(db: Database) -> None:
    start_many(db, CHAIN, BATCH_SIZE)
    run_worker(db, lambda: all_finished(db))
    with db.read() as session:
        task_states = set(session.scalars(select(Task.state)))
    assert task_states == {states.SUCCEEDED}
    for kinds in timelines(db).values():
        assert kinds.count("task_succeeded") == 2 and kinds[-1] == "workflow_succeeded"


def test_shutdown_mid_batch_records_what_ran_and_hands_back_the_rest(db: Database) -> None:
    ran: list[int] = []
    stop = threading.Event()

    def count_and_stop(ctx: TaskContext) -> None:
        ran.append(ctx.attempt)
        if len(ran) == 5:  # the middle of the first batch
            stop.set()

    behaviour["quick"] = count_and_stop
    try:
        start_many(db, QUICK, 2 * BATCH_SIZE)
        worker = Worker(db, WorkerConfig(lease_s=30))
        worker.run(stop)
    finally:
        behaviour.clear()
    with db.read() as session:
        by_state = Counter(session.scalars(select(Task.state)))
        attempts = set(session.scalars(select(Task.attempt).where(Task.state == states.QUEUED)))
        kinds = Counter(session.scalars(select(Event.kind)))
    # What ran is recorded; what was claimed and never started is queued again, its
    # attempt not spent; nothing is left running or failed.
    assert by_state[states.SUCCEEDED] == len(ran) == kinds["task_succeeded"]
    assert by_state[states.QUEUED] == 2 * BATCH_SIZE - len(ran)
    assert kinds["task_released"] == BATCH_SIZE - len(ran) + 1
    assert attempts == {0} and "task_failed" not in kinds and worker.tasks_done == len(ran)


def test_a_batch_takes_only_the_quick_kind(db: Database) -> None:
    start_many(db, QUICK, 3)
    start_many(db, SLOW, 3)
    request = queue.ClaimRequest("w1", 30, batch=10, quick_kinds=frozenset({"quick"}))
    assert [claim.kind for claim in queue.claim_tasks(db, request)] == ["quick"] * 3
    # A slow kind first: it comes alone.
    assert [claim.kind for claim in queue.claim_tasks(db, request)] == ["slow"]


def test_the_media_store_is_checked_once_a_second_not_per_task(db: Database) -> None:
    checks: list[float] = []

    def preflight() -> None:
        checks.append(time.monotonic())  # the store check writes and fsyncs a file

    start_many(db, SLOW, 30)  # about 0.6 s of tasks, one claim each
    worker = run_worker(db, lambda: all_finished(db), preflight=preflight)
    assert worker.tasks_done == 30
    elapsed = checks[-1] - checks[0]
    assert len(checks) <= 2 + elapsed / PREFLIGHT_INTERVAL_S
