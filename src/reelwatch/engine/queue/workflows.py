"""What every queue transaction needs of the workflow it changes: the row locked, the
task fenced to the claim that holds it, the graph's next tasks, and the declaration's
observer and retry policy.

Off the hot path these work on ORM objects; ``claims`` works on plain rows instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.engine import states
from reelwatch.engine.failures import DEFAULT_POLICY, RetryPolicy
from reelwatch.engine.rows import TASK_LEASES, TaskRow
from reelwatch.engine.schema import Task, Workflow
from reelwatch.engine.spec import WorkflowObserver, WorkflowSpec, WorkflowView, workflow_spec

if TYPE_CHECKING:
    from reelwatch.engine.queue.claims import ClaimedTask


class _Node(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def depends_on(self) -> list[str]: ...


NodeT = TypeVar("NodeT", bound=_Node)


def unblocked(tasks: Sequence[NodeT]) -> list[NodeT]:
    """The waiting tasks whose dependencies have all succeeded."""
    done = {t.name for t in tasks if t.state == states.SUCCEEDED}
    return [t for t in tasks if t.state == states.WAITING and set(t.depends_on) <= done]


def lock_workflow(session: Session, workflow_id: int) -> Workflow | None:
    # Locking the workflow first serialises its tasks' outcomes, so two siblings
    # finishing at once cannot both miss that the other finished.
    return session.scalars(
        select(Workflow).where(Workflow.id == workflow_id).with_for_update()
    ).one_or_none()


def tasks_of(session: Session, workflow: Workflow) -> list[Task]:
    return list(
        session.scalars(select(Task).where(Task.workflow_id == workflow.id).order_by(Task.id))
    )


def fenced_update(claim: ClaimedTask) -> Any:
    """UPDATE of the claimed task, matching only while ``claim`` still holds it."""
    return TASK_LEASES.fenced_update(claim.id, claim.worker_id, claim.attempt)


def fenced_task(
    session: Session, claim: ClaimedTask, *, expired_before: datetime | None = None
) -> Task | None:
    """The claimed task, locked, while ``claim`` still holds it (None: fenced out)."""
    query = select(Task).where(TASK_LEASES.fence(claim.id, claim.worker_id, claim.attempt))
    if expired_before is not None:  # a heartbeat may have renewed it since we looked
        query = query.where(Task.lease_expires_at < expired_before)
    return session.scalars(query.with_for_update()).one_or_none()


def holds(task: TaskRow, claim: ClaimedTask) -> bool:
    """Whether ``claim`` still holds ``task``: ``TASK_LEASES.fence`` on a row already
    locked, in plain Python (the hot path checks it for every completion)."""
    return (
        task.id == claim.id
        and task.state == states.RUNNING
        and task.worker_id == claim.worker_id
        and task.attempt == claim.attempt
    )


def observer_of(workflow: WorkflowView) -> WorkflowObserver:
    try:
        return workflow_spec(workflow.name).observer
    except LookupError:  # a workflow this process does not declare: nothing to update
        return WorkflowObserver()


def policy_of(workflow: WorkflowView) -> RetryPolicy:
    try:
        return workflow_spec(workflow.name).retry
    except LookupError:  # a workflow this process does not declare: the default rules
        return DEFAULT_POLICY


def dependency_codes(specs: Mapping[str, WorkflowSpec]) -> set[str]:
    """The failures that mean a dependency was down, in these workflows' policies."""
    return {code for spec in specs.values() for code in spec.retry.dependency_codes}
