"""A worker: claims tasks, runs their handlers under a heartbeat, records the results.

It runs one task at a time. Recording a result and claiming the next task share one
transaction; tasks of a kind that runs faster than a claim's round trip (no-op and
bookkeeping tasks, never an ffmpeg) are claimed and recorded in batches.

The heartbeat thread renews the lease, flushes progress and enforces the task's time
limit; when the lease is lost (the task was rescued, cancelled or deleted) it sets the
task's ``cancelled`` event so the handler stops its ffmpeg. Each worker also stands as
a candidate for the engine's maintenance (``engine.maintenance``): whichever leads
rescues expired leases, so recovery needs no other kind of process.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from reelwatch.db.database import Database, utcnow
from reelwatch.engine import queue
from reelwatch.engine.failures import TIMEOUT, UNKNOWN, TaskFailure
from reelwatch.engine.maintenance import Duty, Maintainer, engine_duties, maintenance_lease_s
from reelwatch.engine.notifier import WorkNotifier, notifier_for
from reelwatch.engine.schema import Task, WorkerRecord
from reelwatch.engine.spec import TaskHandler, WorkflowSpec, registered_workflows, workflow_spec

log = logging.getLogger(__name__)
R = TypeVar("R")

PROGRESS_FLUSH_INTERVAL_S = 1.0
PRESENCE_INTERVAL_S = 5.0
MAX_IDLE_WAIT_S = 1.0
PREFLIGHT_RETRY_S = 2.0
# While the dependencies are up, they are checked at most this often (a media store
# check writes and fsyncs a file: per task, it would cost more than a no-op task).
PREFLIGHT_INTERVAL_S = 1.0
# A handler still running this long after its time limit ignores cancellation (stuck in
# a call that cannot be interrupted): the worker process is recycled.
STALL_GRACE_S = 30.0
# A task kind whose last run took less than this costs less than its claim's round trip:
# a worker then claims up to BATCH_SIZE of them at once (about BATCH_HOLD_S of work) and
# records their outcomes together, holding a batch's successes at most BATCH_HOLD_S.
QUICK_TASK_S = 0.01
BATCH_SIZE = 50
BATCH_HOLD_S = 0.5
EXIT_STALLED = 75  # EX_TEMPFAIL: `reelwatch up` (or systemd) starts a fresh process


@dataclass
class RunningTask:
    """The ``TaskContext`` a handler receives."""

    claim: queue.ClaimedTask
    db: Database
    cancelled: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""
    # CPU seconds the handler spent, its ffmpeg children included (capacity estimate).
    cpu_s: float | None = None
    _progress: float = 0.0

    @property
    def params(self) -> Mapping[str, Any]:
        return self.claim.params

    @property
    def workflow_input(self) -> Mapping[str, Any]:
        return self.claim.workflow_input

    @property
    def subject_id(self) -> str | None:
        return self.claim.subject_id

    @property
    def attempt(self) -> int:
        return self.claim.attempt

    def upstream_outputs(self) -> dict[str, dict[str, Any]]:
        with self.db.read() as session:
            rows = session.execute(
                select(Task.name, Task.output).where(
                    Task.workflow_id == self.claim.workflow_id,
                    Task.name.in_(self.claim.depends_on),
                )
            )
            return {name: dict(output or {}) for name, output in rows}

    @property
    def progress(self) -> float:
        return self._progress

    def report_progress(self, fraction: float) -> None:
        self._progress = min(1.0, max(self._progress, fraction))

    def cancel(self, reason: str) -> None:
        self.cancel_reason = self.cancel_reason or reason
        self.cancelled.set()


@dataclass
class _Watch:
    """The heartbeat's view of one running task."""

    running: RunningTask
    shutdown: threading.Event
    started_at: float = field(default_factory=time.monotonic)
    renewed_at: float = field(default_factory=time.monotonic)
    flushed_progress: float = 0.0
    over: bool = False  # the lease was lost or the task stalled: nothing more to do


class Heartbeat(threading.Thread):
    """The worker's one heartbeat thread: keeps the running task's lease alive, its
    progress visible and its time limit enforced. One thread for the worker's life, not
    one per task: starting and joining a thread cost more than a short task."""

    def __init__(self, *, lease_s: float, on_stalled: Callable[[RunningTask], None]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.lease_s = lease_s
        self.on_stalled = on_stalled
        self.closed = threading.Event()
        self._watch: _Watch | None = None

    def watch(self, running: RunningTask, shutdown: threading.Event) -> None:
        self._watch = _Watch(running, shutdown)

    def unwatch(self) -> None:
        self._watch = None

    def run(self) -> None:
        tick = min(PROGRESS_FLUSH_INTERVAL_S, self.lease_s / 3)
        while not self.closed.wait(tick):
            watch = self._watch
            if watch is not None and not watch.over:
                self._check(watch)

    def _check(self, watch: _Watch) -> None:
        running = watch.running
        if watch.shutdown.is_set():
            running.cancel("shutdown")
        overtime_s = time.monotonic() - watch.started_at - running.claim.timeout_s
        if overtime_s > 0:
            running.cancel("timeout")
        if overtime_s > STALL_GRACE_S:
            watch.over = True
            self.on_stalled(running)
            return
        try:
            self._beat(watch)
        except Exception:  # the database may be briefly away; the lease has slack
            log.exception("heartbeat for task %s failed", running.claim.id)

    def _beat(self, watch: _Watch) -> None:
        running = watch.running
        progress = running.progress
        progress_changed = progress > watch.flushed_progress
        renewal_due = time.monotonic() - watch.renewed_at >= self.lease_s / 3
        if not (progress_changed or renewal_due):
            return
        kept = queue.renew_lease(
            running.db,
            running.claim,
            lease_s=self.lease_s,
            progress=progress if progress_changed else None,
        )
        if not kept:
            running.cancel("lease_lost")
            watch.over = True
            return
        watch.renewed_at = time.monotonic()
        watch.flushed_progress = progress


class Worker:
    """Runs tasks from ``queues`` until ``stop`` is set."""

    def __init__(
        self,
        db: Database,
        *,
        lease_s: float,
        queues: tuple[str, ...] = ("default",),
        name: str | None = None,
        backoff_scale: float = 1.0,
        notifier: WorkNotifier | None = None,
        preflight: Callable[[], str | None] | None = None,
        workflows: Mapping[str, WorkflowSpec] | None = None,
        resources: Callable[[], dict[str, float]] | None = None,
        presence_interval_s: float = PRESENCE_INTERVAL_S,
        exit_process: Callable[[int], None] = os._exit,
        batch_size: int = BATCH_SIZE,
        maintenance: Sequence[Duty] | None = None,
    ) -> None:
        self.db = db
        self.lease_s = lease_s
        self.queues = queues
        self.backoff_scale = backoff_scale
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.notifier = notifier or notifier_for(db)
        # Says what is down (the media store, say) when tasks cannot succeed right now.
        self.preflight = preflight or (lambda: None)
        self.blocked_by: str | None = None
        # The declarations whose handlers this worker runs (default: the registry), so
        # workers of differently configured instances can share a process (tests).
        self.workflows = workflows
        # Reported with each presence beat so the monitor can watch the node.
        self.resources = resources or dict
        self.presence_interval_s = presence_interval_s
        # How a stalled worker ends its process (tests pass a stand-in).
        self.exit_process = exit_process
        self.current: RunningTask | None = None
        self.tasks_done = 0
        # Set when `reelwatch workers drain` asks: finish the task, claim no more, exit.
        self.draining = threading.Event()
        # The periodic duties this worker runs while it leads the maintenance (default:
        # the engine's own, with the default retention).
        self.maintainer = Maintainer(
            db,
            engine_duties(db, backoff_scale=backoff_scale) if maintenance is None else maintenance,
            name=self.id,
            ttl_s=maintenance_lease_s(lease_s),
        )
        self._next_preflight = 0.0
        # Kinds batched (QUICK_TASK_S), up to how many, and the successes of a batch
        # not recorded yet.
        self.quick_kinds: set[str] = set()
        self.batch_size = batch_size
        self._done: list[queue.Completion] = []
        self._batch_claimed_at = 0.0
        self._heartbeat_thread: Heartbeat | None = None

    def run(self, stop: threading.Event) -> None:
        log.info("worker %s started on queues %s", self.id, ",".join(self.queues))
        self._announce("idle", fresh=True)
        presence = threading.Thread(
            target=self._beat_presence, args=(stop,), daemon=True, name="presence"
        )
        presence.start()
        # Its own event: the maintainer stops (and resigns) when this loop ends, drained
        # or stopped.
        ended = threading.Event()
        maintaining = threading.Thread(
            target=self.maintainer.run, args=(ended,), daemon=True, name="maintainer"
        )
        maintaining.start()
        outage = 0
        # Claimed and not started yet: the rest of a batch, or the task the last
        # completion claimed in its own transaction.
        held: deque[queue.ClaimedTask] = deque()
        try:
            while held or not (stop.is_set() or self.draining.is_set()):
                try:
                    if held and stop.is_set():
                        self._hand_back(held)
                        continue
                    if not held:
                        held.extend(self._claim_when_ready(stop))
                        self._batch_claimed_at = time.monotonic()
                    outage = 0
                except DBAPIError as exc:
                    outage += 1
                    log.warning("database unavailable (%s); waiting", exc.orig)
                    stop.wait(min(10.0, 0.2 * 2**outage))
                    continue
                if held:
                    claim = held.popleft()
                    more = self.execute(claim, shutdown=stop, batch_continues=bool(held))
                    if more:
                        held.extend(more)
                        self._batch_claimed_at = time.monotonic()
        finally:
            self._persist(lambda: self._flush(None))
            if self._heartbeat_thread is not None:
                self._heartbeat_thread.closed.set()
            self.notifier.close()
            ended.set()
            maintaining.join(timeout=10)
            self._announce("stopped")
            log.info("worker %s stopped after %d tasks", self.id, self.tasks_done)

    def _claim_when_ready(self, stop: threading.Event) -> list[queue.ClaimedTask]:
        """Tasks to run, or [] after waiting a little (nothing due, or a dependency is
        down)."""
        request = self._claim_request(stop)
        if request is None:
            stop.wait(PREFLIGHT_RETRY_S)
            return []
        claimed = queue.claim_tasks(self.db, request)
        if not claimed:
            self.notifier.wait(self._idle_wait())
        return claimed

    def _claim_request(self, stop: threading.Event) -> queue.ClaimRequest | None:
        """What to ask for next, after the housekeeping that is due; None when this worker
        must not take a task now (stopping, draining, or a dependency is down)."""
        if stop.is_set() or self.draining.is_set():
            return None
        if not self._dependencies_up():
            return None
        return queue.ClaimRequest(
            self.id, self.lease_s, self.queues, self.batch_size, frozenset(self.quick_kinds)
        )

    def _hand_back(self, held: deque[queue.ClaimedTask]) -> None:
        """Shutting down: record what finished, and give back what never started (the
        attempt does not count)."""
        self._flush(None)
        while held:
            queue.release_task(self.db, held[0], reason="worker shutting down")
            held.popleft()

    def execute(
        self,
        claim: queue.ClaimedTask,
        *,
        shutdown: threading.Event | None = None,
        batch_continues: bool = False,
    ) -> list[queue.ClaimedTask]:
        """Run one task and record its outcome; returns the next tasks when they could be
        claimed in the same transaction (only under ``run``, which passes ``shutdown``).

        A success in the middle of a batch is recorded with the batch's last one, if
        the batch is younger than ``BATCH_HOLD_S``."""
        running = RunningTask(claim, self.db)
        self.current = running
        self._heartbeat().watch(running, shutdown or threading.Event())
        try:
            result = self._run_handler(running)
            held_for = time.monotonic() - self._batch_claimed_at
            defer = batch_continues and held_for < min(BATCH_HOLD_S, self.lease_s / 3)
            request = None if defer or shutdown is None else self._claim_request(shutdown)
            return self._finish(running, result, request, defer=defer)
        finally:
            self._heartbeat().unwatch()
            self.current = None
            self.tasks_done += 1

    def _heartbeat(self) -> Heartbeat:
        if self._heartbeat_thread is None:
            self._heartbeat_thread = Heartbeat(lease_s=self.lease_s, on_stalled=self._recycle)
            self._heartbeat_thread.start()
        return self._heartbeat_thread

    def _run_handler(self, running: RunningTask) -> dict[str, Any] | TaskFailure | None:
        claim = running.claim
        cpu_before = _cpu_seconds()
        started = time.monotonic()
        try:
            handler = self._handler_for(claim)
            output = handler(running) or {}
            running.cpu_s = round(_cpu_seconds() - cpu_before, 3)
            self._learn_speed(claim.kind, time.monotonic() - started)
            return output
        except TaskFailure as failure:
            return failure
        except Exception as exc:
            if running.cancelled.is_set():
                return None
            log.exception("task %s (%s) crashed", claim.id, claim.name)
            return TaskFailure(
                UNKNOWN,
                f"{type(exc).__name__}: {exc}",
                detail=traceback.format_exc()[-4000:],
            )

    def _learn_speed(self, kind: str, seconds: float) -> None:
        """Batch a kind while its last run was shorter than a claim's round trip; after
        one slow run its tasks are claimed one at a time again."""
        if seconds < QUICK_TASK_S:
            self.quick_kinds.add(kind)
        else:
            self.quick_kinds.discard(kind)

    def _finish(
        self,
        running: RunningTask,
        result: dict[str, Any] | TaskFailure | None,
        request: queue.ClaimRequest | None,
        *,
        defer: bool,
    ) -> list[queue.ClaimedTask]:
        claim = running.claim
        if running.cancel_reason == "timeout":
            result = TaskFailure(TIMEOUT, f"task ran longer than its {claim.timeout_s:g} s limit")
        elif running.cancel_reason == "shutdown":
            self._persist(lambda: queue.release_task(self.db, claim, reason="worker shutting down"))
            result = None
        elif running.cancelled.is_set():
            log.info("task %s stopped: %s", claim.id, running.cancel_reason)
            result = None  # the lease is someone else's now; they record what happens next
        if isinstance(result, TaskFailure):
            self._record_failure(claim, result)
        elif result is not None:
            self._done.append(queue.Completion(claim, result, running.cpu_s))
        if defer:
            return []
        return self._persist(lambda: self._flush(request)) or []

    def _record_failure(self, claim: queue.ClaimedTask, failure: TaskFailure) -> None:
        state = self._persist(
            lambda: queue.fail_task(self.db, claim, failure, backoff_scale=self.backoff_scale)
        )
        # The full text, paths included: what is recorded for users has none.
        log.info(
            "task %s (%s) failed with %s -> %s: %s\n%s",
            claim.id,
            claim.name,
            failure.code,
            state,
            failure.message,
            failure.detail,
        )

    def _flush(self, request: queue.ClaimRequest | None) -> list[queue.ClaimedTask]:
        """Record the successes not recorded yet and claim what ``request`` asks for, in
        one transaction."""
        if not self._done and request is None:
            return []
        claimed = queue.complete_and_claim(self.db, self._done, request)
        self._done.clear()
        return claimed

    def _persist(self, record: Callable[[], R]) -> R | None:
        """Run ``record`` until the database takes it; None if it never does."""
        for attempt in range(1, 9):
            try:
                return record()
            except DBAPIError as exc:
                # The heartbeat keeps the lease while the database comes back; if it
                # does not, the lease expires and the task is re-run elsewhere.
                log.warning("cannot record an outcome yet (%s)", exc.orig)
                time.sleep(min(8.0, 0.25 * 2**attempt))
        return None

    def _recycle(self, running: RunningTask) -> None:
        """The handler is stuck past its limit: fail the attempt, then exit the process so
        a fresh one replaces it (the stuck thread cannot be stopped from inside)."""
        claim = running.claim
        log.critical(
            "task %s (%s) ignores its %g s time limit; recycling worker %s",
            claim.id,
            claim.name,
            claim.timeout_s,
            self.id,
        )
        failure = TaskFailure(
            TIMEOUT,
            f"task ran longer than its {claim.timeout_s:g} s limit and did not stop; "
            f"worker {self.id} was recycled",
        )
        try:
            queue.fail_task(self.db, claim, failure, backoff_scale=self.backoff_scale)
            self._announce("stopped")
        finally:
            self.exit_process(EXIT_STALLED)

    def _dependencies_up(self) -> bool:
        """Claim nothing while a dependency is down, so no attempt is burnt on it; when
        it is back, re-run at once the tasks that were waiting for it."""
        now = time.monotonic()
        if self.blocked_by is None and now < self._next_preflight:
            return True
        self._next_preflight = now + PREFLIGHT_INTERVAL_S
        problem = self.preflight()
        if problem and problem != self.blocked_by:
            log.error("worker %s is waiting: %s", self.id, problem)
            self._announce("blocked")
        elif not problem and self.blocked_by:
            woken = queue.wake_dependency_waiters(self.db, self._dependency_codes())
            log.warning("dependency is back (%s); %d waiting tasks resume", self.blocked_by, woken)
            self._announce("idle")
        self.blocked_by = problem
        return problem is None

    def _dependency_codes(self) -> set[str]:
        specs = registered_workflows() if self.workflows is None else self.workflows
        return queue.dependency_codes(specs)

    def _handler_for(self, claim: queue.ClaimedTask) -> TaskHandler:
        if self.workflows is not None:
            spec = self.workflows[claim.workflow_name]
        else:
            spec = workflow_spec(claim.workflow_name)
        return spec.handler_for(claim.kind)

    def _idle_wait(self) -> float:
        """Until the next scheduled retry, at most MAX_IDLE_WAIT_S (a rescued task wakes
        the worker through the notifier)."""
        due = queue.next_due_at(self.db, self.queues)
        if due is None:
            return MAX_IDLE_WAIT_S
        return min(MAX_IDLE_WAIT_S, max(0.0, (due - utcnow()).total_seconds()))

    def _beat_presence(self, stop: threading.Event) -> None:
        while not stop.wait(self.presence_interval_s):
            self._announce(None)

    def _announce(self, state: str | None, *, fresh: bool = False) -> None:
        """Upsert this worker's presence row (state None: keep the state, beat only) and
        learn whether it is asked to drain (``fresh``: a new run forgets an old request).

        On start, stop, state changes and every PRESENCE_INTERVAL_S from its own thread
        (a long transcode must not look like a dead worker), never per task: two extra
        write transactions per task would halve the queue's throughput."""
        now = utcnow()
        current_task = self.current.claim.id if self.current else None
        try:
            with self.db.write() as session:
                values: dict[str, Any] = {
                    "heartbeat_at": now,
                    "current_task_id": current_task,
                    "resources": self.resources(),
                }
                if state:
                    values["state"] = state
                if fresh:
                    values["drain_requested_at"] = None
                updated = session.execute(
                    update(WorkerRecord)
                    .where(WorkerRecord.id == self.id)
                    .values(**values)
                    .returning(WorkerRecord.drain_requested_at)
                ).first()
                if updated is not None:
                    self._note_drain_request(updated.drain_requested_at)
                else:
                    session.add(
                        WorkerRecord(
                            id=self.id,
                            hostname=socket.gethostname(),
                            pid=os.getpid(),
                            queues=",".join(self.queues),
                            state=state or "idle",
                            current_task_id=current_task,
                            started_at=now,
                            heartbeat_at=now,
                            resources=values["resources"],
                        )
                    )
        except Exception:
            log.exception("worker %s could not record its presence", self.id)

    def _note_drain_request(self, requested_at: datetime | None) -> None:
        if requested_at is not None and not self.draining.is_set():
            log.warning("worker %s drains: it finishes its task, then exits", self.id)
            self.draining.set()


def _cpu_seconds() -> float:
    """This thread's CPU time plus that of the reaped children (ffmpeg runs as one)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.thread_time() + children.ru_utime + children.ru_stime


def request_drain(db: Database, worker_id: str) -> bool:
    """Ask a worker to finish its task, claim no more and exit; False if it is unknown
    or stopped. It notices at its next presence beat (``PRESENCE_INTERVAL_S``)."""
    with db.write() as session:
        asked = session.execute(
            update(WorkerRecord)
            .where(WorkerRecord.id == worker_id, WorkerRecord.state.not_in(("stopped", "lost")))
            .values(drain_requested_at=utcnow())
        )
        return bool(asked.rowcount)  # type: ignore[attr-defined]


def mark_worker_lost(db: Database, worker_id: str) -> None:
    """Record that a worker's process is known dead (its supervisor saw it exit), so the
    monitor stops watching for its heartbeat instead of reporting it down."""
    with db.write() as session:
        session.execute(
            update(WorkerRecord)
            .where(WorkerRecord.id == worker_id, WorkerRecord.state != "stopped")
            .values(state="lost", current_task_id=None)
        )
