"""Runs one task's handler (River's job_executor): finds the handler, measures its CPU
time, and turns whatever it raises into a ``TaskFailure``; learns which kinds are quick
enough to be claimed in batches."""

from __future__ import annotations

import logging
import resource
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from reelwatch.database import Database, utcnow
from reelwatch.engine import queue
from reelwatch.engine.failures import UNKNOWN, TaskFailure
from reelwatch.engine.schema import Task
from reelwatch.engine.spec import TaskHandler, WorkflowSpec, registered_workflows, workflow_spec
from reelwatch.engine.worker.config import PRESENCE_INTERVAL_S, QUICK_TASK_S

log = logging.getLogger(__name__)

# What a handler's run comes to: its output, a failure, or None (it was cancelled).
Outcome = dict[str, Any] | TaskFailure | None


@dataclass
class RunningTask:
    """The ``TaskContext`` a handler receives."""

    claim: queue.ClaimedTask
    db: Database
    cancelled: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""
    # CPU seconds the handler spent, its ffmpeg children included (capacity estimate).
    cpu_s: float | None = None
    presence_interval_s: float = PRESENCE_INTERVAL_S
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

    def checkpoint(self, kind: str, data: dict[str, Any]) -> bool:
        # A lost lease records nothing: the heartbeat cancels the handler soon after. An
        # unreachable database stops nothing either: the work goes on, the point is missed.
        try:
            return queue.record_checkpoint(self.db, self.claim, kind, data)
        except DBAPIError as exc:
            log.warning("task %s: could not record %s (%s)", self.claim.id, kind, exc.orig)
            return False

    def spare_workers(self, queue_name: str) -> int:
        with self.db.read() as session:
            return queue.spare_workers(
                session,
                queue_name,
                now=utcnow(),
                presence_interval_s=self.presence_interval_s,
                excluding_task=self.claim.id,
            )

    def cancel(self, reason: str) -> None:
        self.cancel_reason = self.cancel_reason or reason
        self.cancelled.set()


class Executor:
    """Runs the handlers of ``workflows`` (default: the registry), so workers of
    differently configured instances can share a process (tests)."""

    def __init__(self, workflows: Mapping[str, WorkflowSpec] | None = None) -> None:
        self.workflows = workflows
        # The kinds claimed in batches (QUICK_TASK_S).
        self.quick_kinds: set[str] = set()

    def run(self, running: RunningTask) -> Outcome:
        claim = running.claim
        cpu_before = cpu_seconds()
        started = time.monotonic()
        try:
            handler = self._handler_for(claim)
            output = handler(running) or {}
            running.cpu_s = round(cpu_seconds() - cpu_before, 3)
            seconds = time.monotonic() - started
            self._learn_speed(claim.kind, seconds)
            # A trace of every real task; a flood of quick ones (batched) only at debug.
            level = logging.DEBUG if seconds < QUICK_TASK_S else logging.INFO
            log.log(level, "task %s (%s) done in %.2f s", claim.id, claim.name, seconds)
            return output
        except TaskFailure as failure:
            return failure
        except Exception as exc:
            if running.cancelled.is_set():
                return None
            log.exception("task %s (%s) crashed", claim.id, claim.name)
            return TaskFailure(
                UNKNOWN, f"{type(exc).__name__}: {exc}", detail=traceback.format_exc()[-4000:]
            )

    def dependency_codes(self) -> set[str]:
        """The failures that mean a dependency was down, in the workflows this runs."""
        specs = registered_workflows() if self.workflows is None else self.workflows
        return queue.dependency_codes(specs)

    def _learn_speed(self, kind: str, seconds: float) -> None:
        """Batch a kind while its last run was shorter than a claim's round trip; after
        one slow run its tasks are claimed one at a time again."""
        if seconds < QUICK_TASK_S:
            self.quick_kinds.add(kind)
        else:
            self.quick_kinds.discard(kind)

    def _handler_for(self, claim: queue.ClaimedTask) -> TaskHandler:
        if self.workflows is not None:
            spec = self.workflows[claim.workflow_name]
        else:
            spec = workflow_spec(claim.workflow_name)
        return spec.handler_for(claim.kind)


def cpu_seconds() -> float:
    """This thread's CPU time plus that of the reaped children (ffmpeg runs as one)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.thread_time() + children.ru_utime + children.ru_stime
