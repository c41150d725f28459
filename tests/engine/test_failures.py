"""The engine's retry policy, given by the workflow: no application catalog involved."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from reelwatch.database import Database, utcnow
from reelwatch.engine import queue, states
from reelwatch.engine.failures import PERMANENT, RetryPolicy, RetryRule, TaskFailure
from reelwatch.engine.schema import Event, Task
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow


def _noop(ctx: TaskContext) -> dict[str, Any]:
    return {}


POLICY = RetryPolicy(
    rules={"flaky": RetryRule(max_attempts=2, backoff_base_s=0), "bad": PERMANENT},
    max_attempts=3,
    redact=lambda text: text.replace("secret", "***"),
)
OWN = register_workflow(WorkflowSpec("test_own_policy", (TaskSpec("only", _noop),), retry=POLICY))


def fail(db: Database, code: str, message: str = "it broke") -> str | None:
    with db.write() as session:  # due now, whatever the backoff
        session.execute(update(Task).values(run_at=utcnow()))
    claimed = queue.claim_next_task(db, "w1", lease_s=30)
    assert claimed is not None
    return queue.fail_task(db, claimed, TaskFailure(code, message))


def test_each_code_spends_its_own_budget_within_the_cap(db: Database) -> None:
    with db.write() as session:
        queue.start_workflow(session, OWN)
    assert fail(db, "flaky") == states.QUEUED
    assert fail(db, "other") == states.QUEUED  # the default rule: its own budget
    assert fail(db, "other") == states.FAILED  # three attempts in all: the cap


def test_a_permanent_code_fails_at_once_and_its_text_is_redacted(db: Database) -> None:
    with db.write() as session:
        workflow_id = queue.start_workflow(session, OWN).id
    assert fail(db, "bad", "the secret path") == states.FAILED
    with db.read() as session:
        data = session.scalars(
            select(Event.data).where(
                Event.workflow_id == workflow_id, Event.kind == "workflow_failed"
            )
        ).one()
    assert data == {"code": "bad", "message": "the *** path"}
