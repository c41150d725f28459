"""The task a worker thread is running, for its log lines (``contextvars``): the engine
knows a task's id, workflow and subject; what a subject is, is the application's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskScope:
    task_id: int
    workflow: str
    subject_id: str | None


current_task: ContextVar[TaskScope | None] = ContextVar("engine_current_task", default=None)


@contextmanager
def task_scope(scope: TaskScope) -> Iterator[None]:
    """``scope`` is the current task while the block runs (in this thread)."""
    token = current_task.set(scope)
    try:
        yield
    finally:
        current_task.reset(token)
