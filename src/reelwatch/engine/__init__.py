"""reelwatch's workflow engine: durable tasks in the database, claimed with leases by
workers, on SQLite or PostgreSQL. It replaces Celery and audits as it controls: every
state change of a workflow or task writes a checkpoint event in the same transaction.

It depends on nothing of reelwatch but ``reelwatch.database`` (the ``Database``
handle). Use it like this::

    from reelwatch.engine import TaskSpec, WorkerConfig, define, run_worker, start
    from reelwatch.engine.schema import create_all

    create_all(db)  # the engine's tables, if no migration made them
    thumbs = define("thumbs", TaskSpec("resize", resize), TaskSpec("upload", upload,
                    depends_on=("resize",)), retry=RetryPolicy(rules={...}))
    with db.write() as session:
        start(session, thumbs, subject_id="photo-1", input={"path": ...})
    run_worker(db, WorkerConfig(lease_s=30), stop)  # until ``stop`` is set

- ``define`` declares a workflow (``spec``): named tasks, dependencies, time limits,
  queues, priorities, and its ``RetryPolicy`` (``failures``): per failure code, whether
  it is retried, how often and with what backoff, within a cap on attempts in all. A
  handler raises ``TaskFailure(code, message)``; anything else it raises is ``unknown``.
- ``start`` / ``start_many`` start workflows inside the caller's transaction, so the
  subject they work on and its workflow appear together (``queue.start``).
- ``Worker`` / ``run_worker`` claim due tasks, run them under a heartbeat, and record
  each outcome (``worker``); every worker also stands for the periodic maintenance
  (``maintenance``: the lease rescuer and the pruner), run by one elected leader.
- ``observe`` attaches a ``WorkflowObserver``: hooks called inside the engine's
  transactions, so a subject (a video row) changes atomically with its workflow.

Inside: ``schema`` (tables), ``queue`` (start, claims, failing, events), ``store``
(what SQLite and PostgreSQL say differently), ``worker``, ``maintenance``,
``leadership``, ``notifier`` (LISTEN/NOTIFY or ``PRAGMA data_version`` wake-ups).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from reelwatch.database import Database
from reelwatch.engine.failures import DEFAULT_POLICY, RetryPolicy, RetryRule, TaskFailure
from reelwatch.engine.queue import WorkflowStart
from reelwatch.engine.queue import start_workflow as start
from reelwatch.engine.queue import start_workflows as start_many
from reelwatch.engine.spec import (
    TaskContext,
    TaskSpec,
    WorkflowObserver,
    WorkflowSpec,
    register_workflow,
)
from reelwatch.engine.worker import Worker, WorkerConfig


def define(
    name: str,
    *tasks: TaskSpec,
    observer: WorkflowObserver | None = None,
    retry: RetryPolicy = DEFAULT_POLICY,
) -> WorkflowSpec:
    """Declare the workflow ``name`` and register it, so workers find its handlers."""
    spec = WorkflowSpec(name, tasks, observer or WorkflowObserver(), retry)
    return register_workflow(spec)


def observe(spec: WorkflowSpec, observer: WorkflowObserver) -> WorkflowSpec:
    """``spec`` with ``observer`` called in its transactions, registered in its place."""
    return register_workflow(replace(spec, observer=observer))


def run_worker(
    db: Database,
    config: WorkerConfig,
    stop: threading.Event,
    *,
    workflows: Mapping[str, WorkflowSpec] | None = None,
    preflight: Callable[[], str | None] | None = None,
    **collaborators: Any,
) -> Worker:
    """Run a worker in this thread until ``stop`` is set; returns it, stopped."""
    worker = Worker(db, config, workflows=workflows, preflight=preflight, **collaborators)
    worker.run(stop)
    return worker


__all__ = [
    "RetryPolicy",
    "RetryRule",
    "TaskContext",
    "TaskFailure",
    "TaskSpec",
    "Worker",
    "WorkerConfig",
    "WorkflowObserver",
    "WorkflowSpec",
    "WorkflowStart",
    "define",
    "observe",
    "run_worker",
    "start",
    "start_many",
]
