"""The pruner on SQLite and PostgreSQL: finished subject-less workflows go, in bounded
batches, after the retention; a running one and every video's timeline stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from reelwatch.database import Database, utcnow
from reelwatch.db.models import Event, Task, Workflow
from reelwatch.engine import queue
from reelwatch.engine.maintenance import Pruner
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow


def _noop(ctx: TaskContext) -> dict[str, Any]:
    return {}


PAIR = register_workflow(
    WorkflowSpec("test_prune_pair", (TaskSpec("a", _noop), TaskSpec("b", _noop, depends_on=("a",))))
)


def start(db: Database, subject: str | None = None) -> int:
    with db.write() as session:
        return queue.start_workflow(session, PAIR, subject_id=subject).id


def run_to_the_end(db: Database) -> None:
    while claimed := queue.claim_tasks(db, queue.ClaimRequest("w", 30, batch=50)):
        queue.complete_and_claim(db, [queue.Completion(c, {}) for c in claimed], None)


def counts(db: Database, workflow_ids: list[int]) -> tuple[int, int, int]:
    """(workflows, tasks, events) of ``workflow_ids``."""
    with db.read() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).where(column.in_(workflow_ids)))
            for column in (Workflow.id, Task.workflow_id, Event.workflow_id)
        )


def timeline(db: Database, subject: str) -> list[tuple[int, str]]:
    with db.read() as session:
        query = select(Event.id, Event.kind).where(Event.subject_id == subject)
        return [(row.id, row.kind) for row in session.execute(query.order_by(Event.id))]


def test_finished_internal_workflows_are_pruned_in_bounded_rounds(db: Database) -> None:
    finished = [start(db) for _ in range(12)]
    video_workflow = start(db, subject="video-1")
    run_to_the_end(db)  # all of them succeed: 12 internal, 1 with a video
    running = start(db)  # and one still under way
    video_timeline = timeline(db, "video-1")
    before = counts(db, finished)
    assert before == (12, 24, 12 * 8), "8 events a run: started, then 3 per task, done"
    pruner = Pruner(db, timedelta(hours=24), batch_size=10, batches=3)

    assert pruner.run(utcnow()) == 0, "nothing is older than the retention yet"
    later = utcnow() + timedelta(hours=25)
    rounds = []
    while deleted := pruner.run(later):
        assert deleted <= 30, "one round deletes at most its batch budget"
        rounds.append(deleted)
    assert sum(rounds) == sum(before) and len(rounds) >= 4

    assert counts(db, finished) == (0, 0, 0)
    assert counts(db, [running]) == (1, 2, 2), "a running workflow is untouched"
    assert counts(db, [video_workflow])[0:2] == (1, 2)
    assert timeline(db, "video-1") == video_timeline, "a video's timeline lives with it"


def test_a_retention_of_none_keeps_everything(db: Database) -> None:
    workflow = start(db)
    run_to_the_end(db)
    assert Pruner(db, None).run(utcnow() + timedelta(days=365)) == 0
    assert counts(db, [workflow])[0] == 1
