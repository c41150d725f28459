"""The worker loop with real threads: handlers, heartbeats, time limits, shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from reelwatch.database import Database, utcnow
from reelwatch.db.models import Event, Task, WorkerRecord, Workflow
from reelwatch.engine import queue, states
from reelwatch.engine.maintenance import expire_stale_leases
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow
from reelwatch.engine.worker import Worker, WorkerConfig, request_drain
from reelwatch.failures import RETRY_POLICY

started = threading.Event()
behaviour: dict[str, Callable[[TaskContext], dict[str, Any] | None]] = {}


def _dispatch(ctx: TaskContext) -> dict[str, Any] | None:
    started.set()
    return behaviour["run"](ctx)


# reelwatch's policy: the tests use its codes (storage_unavailable is a dependency down).
register_workflow(
    WorkflowSpec("test_worker", (TaskSpec("step", _dispatch, timeout_s=60),), retry=RETRY_POLICY)
)
register_workflow(
    WorkflowSpec(
        "test_worker_short", (TaskSpec("step", _dispatch, timeout_s=0.5),), retry=RETRY_POLICY
    )
)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def workflow_state(db: Database, workflow_id: int) -> str:
    with db.read() as session:
        return session.get_one(Workflow, workflow_id).state


def kinds(db: Database, workflow_id: int) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Event.kind).where(Event.workflow_id == workflow_id).order_by(Event.id)
            )
        )


@pytest.fixture
def running_worker(db: Database) -> Iterator[tuple[Worker, threading.Event]]:
    started.clear()
    worker = Worker(db, WorkerConfig(lease_s=3, backoff_scale=0))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    yield worker, stop
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def start(db: Database, name: str = "test_worker") -> int:
    from reelwatch.engine.spec import workflow_spec

    with db.write() as session:
        return queue.start_workflow(session, workflow_spec(name)).id


def test_worker_runs_a_task_and_reports_progress(
    db: Database, running_worker: tuple[Worker, threading.Event]
) -> None:
    def run(ctx: TaskContext) -> dict[str, Any]:
        ctx.report_progress(0.9)
        time.sleep(1.5)  # long enough for one progress flush by the heartbeat
        return {"answer": 42}

    behaviour["run"] = run
    workflow_id = start(db)
    wait_until(lambda: workflow_state(db, workflow_id) == states.WF_SUCCEEDED)
    events = kinds(db, workflow_id)
    assert events.count("task_progress") == 3
    with db.read() as session:
        task = session.scalars(select(Task).where(Task.workflow_id == workflow_id)).one()
        assert task.output == {"answer": 42} and task.worker_id == running_worker[0].id


def test_unexpected_exception_becomes_unknown_and_is_retried(
    db: Database, running_worker: tuple[Worker, threading.Event]
) -> None:
    calls = []

    def run(ctx: TaskContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("boom")
        return {}

    behaviour["run"] = run
    workflow_id = start(db)
    wait_until(lambda: workflow_state(db, workflow_id) == states.WF_SUCCEEDED)
    assert calls == [1, 2]
    with db.read() as session:
        failed = session.scalars(
            select(Event).where(Event.workflow_id == workflow_id, Event.kind == "task_failed")
        ).one()
    assert failed.data["code"] == "unknown" and "RuntimeError: boom" in failed.data["message"]
    assert "Traceback" in failed.data["detail"]


def test_task_over_its_time_limit_fails_with_timeout(
    db: Database, running_worker: tuple[Worker, threading.Event]
) -> None:
    def run(ctx: TaskContext) -> dict[str, Any]:
        if not ctx.cancelled.wait(30):
            raise AssertionError("never cancelled")
        raise InterruptedError("stopped")

    behaviour["run"] = run
    workflow_id = start(db, "test_worker_short")
    wait_until(lambda: "retry_scheduled" in kinds(db, workflow_id))
    with db.read() as session:
        failed = session.scalars(
            select(Event).where(Event.workflow_id == workflow_id, Event.kind == "task_failed")
        ).first()
    assert failed is not None and failed.data["code"] == "timeout"


def test_lost_lease_cancels_the_handler_and_records_nothing(
    db: Database, running_worker: tuple[Worker, threading.Event]
) -> None:
    cancelled = threading.Event()

    def run(ctx: TaskContext) -> dict[str, Any]:
        if ctx.attempt > 1:
            return {"attempt": ctx.attempt}
        if ctx.cancelled.wait(30):
            cancelled.set()
        return {"late": True}

    behaviour["run"] = run
    workflow_id = start(db)
    assert started.wait(20)
    with db.write() as session:  # another node decides this worker is gone
        session.execute(update(Task).values(lease_expires_at=utcnow()))
    expire_stale_leases(db)  # a lost worker's task is retried at once
    assert cancelled.wait(20)
    wait_until(lambda: workflow_state(db, workflow_id) == states.WF_SUCCEEDED)
    with db.read() as session:
        task = session.scalars(select(Task).where(Task.workflow_id == workflow_id)).one()
        succeeded = session.scalars(
            select(Event.attempt).where(
                Event.workflow_id == workflow_id, Event.kind == "task_succeeded"
            )
        ).all()
    # The first attempt's late result was fenced out; only the retry's is recorded.
    assert task.output == {"attempt": 2} and succeeded == [2]


def test_shutdown_hands_the_running_task_back(db: Database) -> None:
    started.clear()

    def run(ctx: TaskContext) -> dict[str, Any]:
        ctx.cancelled.wait(30)
        raise InterruptedError("stopped")

    behaviour["run"] = run
    workflow_id = start(db)
    worker = Worker(db, WorkerConfig(lease_s=3))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    assert started.wait(20)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    with db.read() as session:
        task = session.scalars(select(Task).where(Task.workflow_id == workflow_id)).one()
    assert task.state == states.QUEUED and task.attempt == 0
    assert kinds(db, workflow_id)[-1] == "task_released"


def test_a_handler_records_a_checkpoint_while_its_lease_is_its_own(
    db: Database, running_worker: tuple[Worker, threading.Event]
) -> None:
    claims: list[queue.ClaimedTask] = []

    def run(ctx: TaskContext) -> dict[str, Any]:
        claims.append(ctx.claim)  # type: ignore[attr-defined]
        return {"recorded": ctx.checkpoint("halfway", {"segments": 1})}

    behaviour["run"] = run
    workflow_id = start(db)
    wait_until(lambda: workflow_state(db, workflow_id) == states.WF_SUCCEEDED)
    assert kinds(db, workflow_id)[-4:] == [
        "task_started",
        "halfway",
        "task_succeeded",
        "workflow_succeeded",
    ]
    with db.read() as session:
        event = session.scalars(select(Event).where(Event.kind == "halfway")).one()
        output = session.scalars(select(Task.output).where(Task.workflow_id == workflow_id)).one()
    assert (event.task, event.data, output) == ("step", {"segments": 1}, {"recorded": True})
    # Once the task is done its claim is stale: nothing more is recorded for it.
    assert not queue.record_checkpoint(db, claims[0], "late", {})
    assert "late" not in kinds(db, workflow_id)


def test_worker_waits_while_a_dependency_is_down_and_resumes_waiters(db: Database) -> None:
    from datetime import timedelta

    from reelwatch.db.models import WorkerRecord

    behaviour["run"] = lambda ctx: {}
    workflow_id = start(db)
    with db.write() as session:  # as if it had failed on storage and were backing off
        session.execute(
            update(Task).values(
                error_code="storage_unavailable", run_at=utcnow() + timedelta(hours=1)
            )
        )
    problem: list[str | None] = ["media store is not writable"]
    worker = Worker(db, WorkerConfig(lease_s=3), preflight=lambda: problem[0])
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:

        def state() -> str | None:
            with db.read() as session:
                return session.scalar(
                    select(WorkerRecord.state).where(WorkerRecord.id == worker.id)
                )

        wait_until(lambda: state() == "blocked")
        problem[0] = None
        wait_until(lambda: workflow_state(db, workflow_id) == states.WF_SUCCEEDED)
        with db.read() as session:
            task = session.scalars(select(Task).where(Task.workflow_id == workflow_id)).one()
        assert task.attempt == 1, "the outage must not burn attempts"
    finally:
        stop.set()
        thread.join(timeout=30)


def test_presence_beats_during_a_long_task_with_the_nodes_resources(db: Database) -> None:
    from reelwatch.db.models import WorkerRecord
    from reelwatch.monitor.resources import node_resources

    release = threading.Event()
    behaviour["run"] = lambda ctx: {"waited": release.wait(30)}
    start(db)
    worker = Worker(
        db,
        WorkerConfig(lease_s=3, presence_interval_s=0.2),
        resources=lambda: node_resources(Path("/")),
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    started.clear()
    thread.start()
    try:
        assert started.wait(20)

        def beat() -> tuple[object, dict[str, float]]:
            with db.read() as session:
                record = session.get_one(WorkerRecord, worker.id)
                return record.heartbeat_at, dict(record.resources)

        first, resources = beat()
        wait_until(lambda: beat()[0] != first)
        assert 0 <= resources["memory_percent"] <= 100
        assert 0 < resources["disk_free_percent"] <= 100
    finally:
        release.set()
        stop.set()
        thread.join(timeout=30)


def test_a_handler_stuck_past_its_limit_recycles_the_worker(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that ignores cancellation cannot be stopped from inside the process:
    the attempt fails as a timeout and the worker exits for a fresh process."""
    monkeypatch.setattr("reelwatch.engine.worker.heartbeat.STALL_GRACE_S", 0.5)
    started.clear()
    unblock = threading.Event()

    def deaf(ctx: TaskContext) -> None:
        unblock.wait(30)  # never looks at ctx.cancelled

    behaviour["run"] = deaf
    exits: list[int] = []
    worker = Worker(db, WorkerConfig(lease_s=3, backoff_scale=0), exit_process=exits.append)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        workflow_id = start(db, "test_worker_short")
        wait_until(lambda: exits == [75])
        with db.read() as session:
            task = session.scalars(select(Task).where(Task.workflow_id == workflow_id)).one()
            assert task.error_code == "timeout" and "was recycled" in (task.error_message or "")
            assert task.state == states.QUEUED, "a timeout is retried, on a fresh worker"
    finally:
        unblock.set()
        stop.set()
        thread.join(timeout=30)


def test_a_drained_worker_finishes_its_task_then_claims_nothing_and_stops(db: Database) -> None:
    started.clear()
    release = threading.Event()

    def slow(ctx: TaskContext) -> dict[str, Any]:
        release.wait(30)
        return {"done": True}

    behaviour["run"] = slow
    worker = Worker(db, WorkerConfig(lease_s=3, backoff_scale=0, presence_interval_s=0.1))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        first = start(db)
        assert started.wait(20)
        second = start(db)
        assert request_drain(db, worker.id)
        wait_until(worker.draining.is_set)
        release.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "a drained worker stops by itself"
        assert workflow_state(db, first) == states.WF_SUCCEEDED, "its task was finished"
        assert "task_started" not in kinds(db, second), "and nothing new was claimed"
        with db.read() as session:
            record = session.get_one(WorkerRecord, worker.id)
        assert record.state == "stopped"
        assert not request_drain(db, worker.id), "a stopped worker cannot be drained"
    finally:
        release.set()
        stop.set()
        thread.join(timeout=30)
