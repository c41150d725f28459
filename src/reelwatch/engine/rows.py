"""Tasks and workflows as plain rows, for the queue's hot path.

A task is claimed and completed thousands of times a second at best; loading ORM
objects and flushing them through the unit of work cost several times more Python
than the statements themselves. The claim and the completion therefore run Core
statements built once, and hand these rows to the observers (they satisfy the
``TaskView`` and ``WorkflowView`` protocols, as the ORM objects do off the hot path).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table, bindparam, select, update
from sqlalchemy.orm import Session

from reelwatch.engine import states
from reelwatch.engine.leasing import LeasedRows
from reelwatch.engine.schema import Event, Task, Workflow

TASKS = cast(Table, Task.__table__)
WORKFLOWS = cast(Table, Workflow.__table__)
EVENTS = cast(Table, Event.__table__)
# A task waits queued until ``run_at`` and runs leased to one worker for one attempt.
TASK_LEASES = LeasedRows(
    TASKS,
    waiting=states.QUEUED,
    leased=states.RUNNING,
    owner="worker_id",
    attempt="attempt",
    due_at="run_at",
)


@dataclass(slots=True)
class TaskRow:
    id: int
    workflow_id: int
    name: str
    kind: str
    priority: int
    params: dict[str, Any]
    depends_on: list[str]
    weight: float
    timeout_s: float
    state: str
    attempt: int
    worker_id: str | None
    progress: float
    run_at: datetime
    started_at: datetime | None


@dataclass(slots=True, frozen=True)
class WorkflowRow:
    id: int
    name: str
    subject_id: str | None
    state: str
    run: int
    input: dict[str, Any]


# The columns in the rows' field order, so a result row unpacks into its dataclass.
TASK_COLUMNS = tuple(TASKS.c[name] for name in TaskRow.__slots__)
WORKFLOW_COLUMNS = tuple(WORKFLOWS.c[name] for name in WorkflowRow.__slots__)
_WORKFLOWS = (
    select(*WORKFLOW_COLUMNS)
    .where(WORKFLOWS.c.id.in_(bindparam("workflow_ids", expanding=True)))
    .order_by(WORKFLOWS.c.id)  # one lock order for every transaction: no deadlocks
)
_LOCKED_WORKFLOWS = _WORKFLOWS.with_for_update()
_LOCKED_TASKS = (
    select(*TASK_COLUMNS)
    .where(TASKS.c.workflow_id.in_(bindparam("workflow_ids", expanding=True)))
    .order_by(TASKS.c.workflow_id, TASKS.c.id)
    .with_for_update()
)
_SUCCEED_TASKS = (
    update(TASKS)
    .where(TASKS.c.id.in_(bindparam("task_ids", expanding=True)))
    .values(
        state=states.SUCCEEDED,
        output={},
        progress=1.0,
        finished_at=bindparam("now"),
        lease_expires_at=None,
    )
)
_SET_OUTPUT = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"))
    .values(output=bindparam("output", type_=JSON))
)
_QUEUE_TASKS = (
    update(TASKS)
    .where(TASKS.c.id.in_(bindparam("task_ids", expanding=True)))
    .values(state=states.QUEUED, run_at=bindparam("now"))
)
_SUCCEED_WORKFLOWS = (
    update(WORKFLOWS)
    .where(WORKFLOWS.c.id.in_(bindparam("workflow_ids", expanding=True)))
    .values(state=states.WF_SUCCEEDED, finished_at=bindparam("now"))
)


def workflow_rows(
    session: Session, workflow_ids: Iterable[int], *, lock: bool = False
) -> dict[int, WorkflowRow]:
    statement = _LOCKED_WORKFLOWS if lock else _WORKFLOWS
    found = session.execute(statement, {"workflow_ids": sorted(set(workflow_ids))})
    return {row.id: WorkflowRow(*row) for row in found}


def locked_task_rows(session: Session, workflow_ids: Iterable[int]) -> dict[int, list[TaskRow]]:
    """The tasks of these workflows, locked, by workflow."""
    tasks: dict[int, list[TaskRow]] = {}
    for row in session.execute(_LOCKED_TASKS, {"workflow_ids": sorted(set(workflow_ids))}):
        tasks.setdefault(row.workflow_id, []).append(TaskRow(*row))
    return tasks


class TaskWrites:
    """The task and workflow updates of a batch of completions, applied together: one
    statement each for the whole batch (outputs apart), instead of one per task. The rows
    in memory change at once, so observers see the new states."""

    def __init__(self) -> None:
        self._succeeded: list[int] = []
        self._outputs: list[dict[str, Any]] = []
        self._queued: list[int] = []
        self._succeeded_workflows: list[int] = []

    def succeed(self, task: TaskRow, output: dict[str, Any]) -> None:
        self._succeeded.append(task.id)
        if output:
            self._outputs.append({"task_id": task.id, "output": output})
        task.state, task.progress = states.SUCCEEDED, 1.0

    def queue(self, tasks: list[TaskRow], now: datetime) -> None:
        self._queued += [task.id for task in tasks]
        for task in tasks:
            task.state, task.run_at = states.QUEUED, now

    def succeed_workflow(self, workflow: WorkflowRow) -> None:
        self._succeeded_workflows.append(workflow.id)

    def apply(self, session: Session, now: datetime) -> None:
        if self._succeeded:
            session.execute(_SUCCEED_TASKS, {"task_ids": self._succeeded, "now": now})
        if self._outputs:
            session.execute(_SET_OUTPUT, self._outputs)
        if self._queued:
            session.execute(_QUEUE_TASKS, {"task_ids": self._queued, "now": now})
        if self._succeeded_workflows:
            session.execute(
                _SUCCEED_WORKFLOWS, {"workflow_ids": self._succeeded_workflows, "now": now}
            )
