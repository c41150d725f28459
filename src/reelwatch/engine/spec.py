"""Workflows declared in code: named tasks, their dependencies, timeouts and retries.

A ``WorkflowSpec`` is instantiated per subject (a video) by ``queue.start_workflow``;
workers find a claimed task's handler through the registry here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from reelwatch.engine.failures import DEFAULT_POLICY, RetryPolicy, TaskFailure


class TaskContext(Protocol):
    """What a running task handler may use: its inputs, progress and cancellation."""

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def workflow_input(self) -> Mapping[str, Any]: ...

    @property
    def subject_id(self) -> str | None: ...

    @property
    def attempt(self) -> int: ...

    @property
    def cancelled(self) -> threading.Event:
        """Set when the task must stop: lease lost, time limit, or worker shutdown."""

    def upstream_outputs(self) -> dict[str, dict[str, Any]]:
        """The outputs of the tasks this one depends on, by task name."""

    def report_progress(self, fraction: float) -> None: ...

    def checkpoint(self, kind: str, data: dict[str, Any]) -> bool:
        """Record that the task reached ``kind`` while still running: an event on the
        timeline, and ``WorkflowObserver.task_checkpointed`` in the same transaction.
        False when it could not be (the lease was lost, the database is unreachable)."""

    def spare_workers(self, queue: str) -> int:
        """How many tasks of ``queue`` could start at once, none waiting, once this one is
        done: more than one, and work split into parts would run side by side."""


TaskHandler = Callable[[TaskContext], dict[str, Any] | None]


class WorkflowView(Protocol):
    """What an observer may read of a workflow (a row, or the ORM object off the hot path)."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def subject_id(self) -> str | None: ...

    @property
    def run(self) -> int: ...


class TaskView(Protocol):
    """What an observer may read of a task."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def worker_id(self) -> str | None: ...

    @property
    def weight(self) -> float: ...

    @property
    def progress(self) -> float: ...

    @property
    def run_at(self) -> datetime: ...


class WorkflowObserver:
    """Hooks called inside the engine's transactions, so a workflow's subject (the video
    row) changes atomically with the workflow's state and events. The defaults do
    nothing; the pipeline overrides what it needs. Hooks read the workflow and its
    tasks and must not change them: the engine writes their state itself."""

    def task_started(self, session: Session, workflow: WorkflowView, task: TaskView) -> None:
        pass

    def task_progressed(
        self, session: Session, workflow: WorkflowView, tasks: Sequence[TaskView]
    ) -> None:
        pass

    def task_checkpointed(
        self,
        session: Session,
        workflow: WorkflowView,
        task: TaskView,
        kind: str,
        data: dict[str, Any],
    ) -> None:
        pass

    def task_succeeded(
        self, session: Session, workflow: WorkflowView, task: TaskView, output: dict[str, Any]
    ) -> None:
        pass

    def retry_scheduled(
        self, session: Session, workflow: WorkflowView, task: TaskView, failure: TaskFailure
    ) -> None:
        pass

    def workflow_succeeded(self, session: Session, workflow: WorkflowView) -> None:
        pass

    def workflow_failed(
        self, session: Session, workflow: WorkflowView, failure: TaskFailure
    ) -> None:
        pass

    def workflow_restarted(self, session: Session, workflow: WorkflowView) -> None:
        pass


@dataclass(frozen=True)
class TaskSpec:
    """A node of the graph. Tasks that share a handler share a ``kind`` and differ in
    ``params`` (each rendition is a ``transcode`` with its own rung)."""

    name: str
    handler: TaskHandler
    kind: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    # Wall-clock limit the worker enforces around the handler.
    timeout_s: float = 4 * 3600
    # Share of the workflow's progress this task accounts for.
    weight: float = 1.0
    queue: str = "default"
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.name)


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    tasks: tuple[TaskSpec, ...]
    observer: WorkflowObserver = field(default_factory=WorkflowObserver)
    # Which failures are retried, how often and after what backoff.
    retry: RetryPolicy = DEFAULT_POLICY

    def __post_init__(self) -> None:
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"workflow {self.name}: duplicate task names")
        for task in self.tasks:
            unknown = set(task.depends_on) - set(names)
            if unknown:
                raise ValueError(f"workflow {self.name}: {task.name} depends on {unknown}")
        self._check_acyclic()

    def handler_for(self, kind: str) -> TaskHandler:
        """The handler of a task row; by kind, so rows planned under other settings
        (another rendition ladder) still find theirs."""
        for task in self.tasks:
            if task.kind == kind:
                return task.handler
        raise LookupError(f"workflow {self.name} has no task kind {kind!r}")

    def _check_acyclic(self) -> None:
        done: set[str] = set()
        remaining = list(self.tasks)
        while remaining:
            ready = [t for t in remaining if set(t.depends_on) <= done]
            if not ready:
                raise ValueError(f"workflow {self.name}: dependency cycle")
            done.update(t.name for t in ready)
            remaining = [t for t in remaining if t.name not in done]


_REGISTRY: dict[str, WorkflowSpec] = {}


def register_workflow(spec: WorkflowSpec) -> WorkflowSpec:
    _REGISTRY[spec.name] = spec
    return spec


def registered_workflows() -> dict[str, WorkflowSpec]:
    """Every workflow registered in this process, by name."""
    return dict(_REGISTRY)


def workflow_spec(name: str) -> WorkflowSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LookupError(f"no workflow named {name!r} is registered") from None
