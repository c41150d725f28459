"""Starting many workflows in one call: all claimable, each with its first events, and
the statements it costs do not grow with how many."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import event, select

from reelwatch.database import Database
from reelwatch.engine import queue
from reelwatch.engine.schema import Event, Workflow
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow


def _noop(ctx: TaskContext) -> dict[str, Any]:
    return {}


PAIR = register_workflow(
    WorkflowSpec(
        "test_start_many",
        (TaskSpec("root", _noop), TaskSpec("leaf", _noop, depends_on=("root",))),
    )
)


def statements_to_start(db: Database, count: int) -> int:
    executed: list[str] = []

    def count_statement(*args: Any) -> None:
        executed.append(args[2])

    starts = [queue.WorkflowStart(PAIR, subject_id=f"s{index}") for index in range(count)]
    event.listen(db.engine, "before_cursor_execute", count_statement)
    try:
        with db.write() as session:
            queue.start_workflows(session, starts)
    finally:
        event.remove(db.engine, "before_cursor_execute", count_statement)
    return len(executed)


def test_many_workflows_start_in_one_call_with_their_events(db: Database) -> None:
    with db.write() as session:
        started = queue.start_workflows(
            session,
            [queue.WorkflowStart(PAIR, subject_id=f"v{n}", input={"n": n}) for n in range(30)],
        )
    assert [workflow.subject_id for workflow in started] == [f"v{n}" for n in range(30)]
    with db.read() as session:  # each returned id is the row of that start
        stored = {
            row.id: (row.subject_id, row.input)
            for row in session.execute(select(Workflow.id, Workflow.subject_id, Workflow.input))
        }
    assert stored == {workflow.id: (f"v{n}", {"n": n}) for n, workflow in enumerate(started)}
    claimed = queue.claim_tasks(db, queue.ClaimRequest("w1", 30, batch=1))
    while len(claimed) < 30:
        more = queue.claim_tasks(db, queue.ClaimRequest("w1", 30))
        assert more, "every root is claimable"
        claimed += more
    assert {claim.workflow_id for claim in claimed} == {workflow.id for workflow in started}
    assert {claim.name for claim in claimed} == {"root"}
    with db.read() as session:
        kinds = Counter(
            (workflow_id, kind)
            for workflow_id, kind in session.execute(select(Event.workflow_id, Event.kind))
        )
    for workflow in started:
        assert kinds[(workflow.id, "workflow_started")] == 1
        assert kinds[(workflow.id, "task_queued")] == 1  # the root; the leaf waits


def test_the_statements_do_not_grow_with_the_number_of_workflows(db: Database) -> None:
    assert statements_to_start(db, 2) == statements_to_start(db, 40)
