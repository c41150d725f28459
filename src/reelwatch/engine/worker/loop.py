"""The worker's loop: claim → run → record, until stopped or drained.

It runs one task at a time. Recording a result and claiming the next task share one
transaction; tasks of a kind that runs faster than a claim's round trip are claimed and
recorded in batches. At shutdown, what finished is recorded and what never started is
handed back. Each worker also stands as a candidate for the engine's maintenance
(``engine.maintenance``), so recovery needs no other kind of process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from reelwatch.database import Database, utcnow
from reelwatch.engine import queue
from reelwatch.engine.context import TaskScope, task_scope
from reelwatch.engine.failures import TIMEOUT, TaskFailure
from reelwatch.engine.maintenance import Duty, Maintainer, engine_duties, maintenance_lease_s
from reelwatch.engine.notifier import WorkNotifier, notifier_for
from reelwatch.engine.spec import WorkflowSpec
from reelwatch.engine.worker.config import (
    BATCH_HOLD_S,
    EXIT_STALLED,
    MAX_IDLE_WAIT_S,
    PREFLIGHT_INTERVAL_S,
    PREFLIGHT_RETRY_S,
    WorkerConfig,
    default_name,
)
from reelwatch.engine.worker.executor import Executor, Outcome, RunningTask
from reelwatch.engine.worker.heartbeat import Heartbeat
from reelwatch.engine.worker.presence import Presence

log = logging.getLogger(__name__)
R = TypeVar("R")


class Worker:
    """Runs tasks from ``config.queues`` until ``stop`` is set.

    Collaborators, all optional: ``notifier`` (wakes it on new work; the database's by
    default), ``preflight`` (says what is down, the media store say, when tasks cannot
    succeed now), ``workflows`` (whose handlers it runs; the registry by default),
    ``resources`` (reported on each presence beat), ``exit_process`` (how a stalled
    worker ends its process) and ``maintenance`` (the duties it runs while it leads;
    the engine's own by default)."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        *,
        notifier: WorkNotifier | None = None,
        preflight: Callable[[], str | None] | None = None,
        workflows: Mapping[str, WorkflowSpec] | None = None,
        resources: Callable[[], dict[str, float]] | None = None,
        exit_process: Callable[[int], None] = os._exit,
        maintenance: Sequence[Duty] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.id = config.name or default_name()
        self.notifier = notifier or notifier_for(db)
        self.preflight = preflight or (lambda: None)
        self.blocked_by: str | None = None
        self.executor = Executor(workflows)
        self.presence = Presence(
            db,
            self.id,
            config.queues,
            interval_s=config.presence_interval_s,
            current_task=lambda: self.current.claim.id if self.current else None,
            resources=resources or dict,
        )
        self.exit_process = exit_process
        self.current: RunningTask | None = None
        self.tasks_done = 0
        self.maintainer = Maintainer(
            db,
            engine_duties(db, backoff_scale=config.backoff_scale)
            if maintenance is None
            else maintenance,
            name=self.id,
            ttl_s=maintenance_lease_s(config.lease_s),
        )
        self._next_preflight = 0.0
        # The successes of a batch not recorded yet.
        self._done: list[queue.Completion] = []
        self._batch_claimed_at = 0.0
        self._heartbeat_thread: Heartbeat | None = None

    @property
    def draining(self) -> threading.Event:
        return self.presence.draining

    @property
    def quick_kinds(self) -> set[str]:
        return self.executor.quick_kinds

    def run(self, stop: threading.Event) -> None:
        log.info("worker %s started on queues %s", self.id, ",".join(self.config.queues))
        self.presence.announce("idle", fresh=True)
        beating = threading.Thread(
            target=self.presence.beat_until, args=(stop,), daemon=True, name="presence"
        )
        beating.start()
        # Its own event: the maintainer stops (and resigns) when this loop ends, drained
        # or stopped.
        ended = threading.Event()
        maintaining = threading.Thread(
            target=self.maintainer.run, args=(ended,), daemon=True, name="maintainer"
        )
        maintaining.start()
        try:
            self._loop(stop)
        finally:
            self._persist(lambda: self._flush(None))
            if self._heartbeat_thread is not None:
                self._heartbeat_thread.closed.set()
            self.notifier.close()
            ended.set()
            maintaining.join(timeout=10)
            self.presence.announce("stopped")
            log.info("worker %s stopped after %d tasks", self.id, self.tasks_done)

    def _loop(self, stop: threading.Event) -> None:
        outage = 0
        # Claimed and not started yet: the rest of a batch, or the task the last
        # completion claimed in its own transaction.
        held: deque[queue.ClaimedTask] = deque()
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
        config = self.config
        quick = frozenset(self.executor.quick_kinds)
        return queue.ClaimRequest(self.id, config.lease_s, config.queues, config.batch_size, quick)

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
        running = RunningTask(claim, self.db, presence_interval_s=self.config.presence_interval_s)
        self.current = running
        self._heartbeat().watch(running, shutdown or threading.Event())
        scope = TaskScope(claim.id, claim.workflow_name, claim.subject_id)
        try:
            with task_scope(scope):  # the task's log lines name it (and its subject)
                outcome = self.executor.run(running)
                held_for = time.monotonic() - self._batch_claimed_at
                defer = batch_continues and held_for < min(BATCH_HOLD_S, self.config.lease_s / 3)
                request = None if defer or shutdown is None else self._claim_request(shutdown)
                return self._finish(running, outcome, request, defer=defer)
        finally:
            self._heartbeat().unwatch()
            self.current = None
            self.tasks_done += 1

    def _heartbeat(self) -> Heartbeat:
        if self._heartbeat_thread is None:
            self._heartbeat_thread = Heartbeat(
                lease_s=self.config.lease_s, on_stalled=self._recycle
            )
            self._heartbeat_thread.start()
        return self._heartbeat_thread

    def _finish(
        self,
        running: RunningTask,
        outcome: Outcome,
        request: queue.ClaimRequest | None,
        *,
        defer: bool,
    ) -> list[queue.ClaimedTask]:
        claim = running.claim
        if running.cancel_reason == "timeout":
            outcome = TaskFailure(TIMEOUT, f"task ran longer than its {claim.timeout_s:g} s limit")
        elif running.cancel_reason == "shutdown":
            self._persist(lambda: queue.release_task(self.db, claim, reason="worker shutting down"))
            outcome = None
        elif running.cancelled.is_set():
            log.info("task %s stopped: %s", claim.id, running.cancel_reason)
            outcome = None  # the lease is someone else's now; they record what happens next
        if isinstance(outcome, TaskFailure):
            self._record_failure(claim, outcome)
        elif outcome is not None:
            self._done.append(queue.Completion(claim, outcome, running.cpu_s))
        if defer:
            return []
        return self._persist(lambda: self._flush(request)) or []

    def _record_failure(self, claim: queue.ClaimedTask, failure: TaskFailure) -> None:
        state = self._persist(
            lambda: queue.fail_task(
                self.db, claim, failure, backoff_scale=self.config.backoff_scale
            )
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
            queue.fail_task(self.db, claim, failure, backoff_scale=self.config.backoff_scale)
            self.presence.announce("stopped")
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
            self.presence.announce("blocked")
        elif not problem and self.blocked_by:
            woken = queue.wake_dependency_waiters(self.db, self.executor.dependency_codes())
            log.warning("dependency is back (%s); %d waiting tasks resume", self.blocked_by, woken)
            self.presence.announce("idle")
        self.blocked_by = problem
        return problem is None

    def _idle_wait(self) -> float:
        """Until the next scheduled retry, at most MAX_IDLE_WAIT_S (a rescued task wakes
        the worker through the notifier)."""
        due = queue.next_due_at(self.db, self.config.queues)
        if due is None:
            return MAX_IDLE_WAIT_S
        return min(MAX_IDLE_WAIT_S, max(0.0, (due - utcnow()).total_seconds()))
