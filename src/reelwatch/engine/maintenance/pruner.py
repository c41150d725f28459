"""The pruner (Oban's Pruner, River's job_cleaner): deletes the engine's finished rows
that nothing reads any more, so the workflows, tasks and events tables stay bounded.

It deletes the workflows that have no subject (the monitor's ping, engine-internal
runs) once they finished more than ``retention`` ago, with their tasks and events. A
workflow with a subject (a video) is never touched here: its tasks draw the video's
graph and its events are the video's timeline, so they live as long as the video and
go with it (``ON DELETE CASCADE``). Options: ``retention`` (``REELWATCH_PRUNE_FINISHED_HOURS``,
24 h; None keeps everything), ``interval_s`` (30 s), ``batch_size`` (1,000 rows per
statement) and ``batches`` (4 statements per round, each its own short transaction,
so SQLite's write lock is never held for long). Reports how many rows it deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, select

from reelwatch.database import Database, retry_on_conflict
from reelwatch.engine import states
from reelwatch.engine.schema import Event, Task, Workflow

log = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 30.0
BATCH_SIZE = 1000
BATCHES_PER_ROUND = 4
FINISHED_WORKFLOWS = (states.WF_SUCCEEDED, states.WF_FAILED)


@dataclass(frozen=True)
class Pruner:
    db: Database
    retention: timedelta | None = timedelta(hours=24)
    interval_s: float = PRUNE_INTERVAL_S
    batch_size: int = BATCH_SIZE
    batches: int = BATCHES_PER_ROUND
    name: str = "pruner"

    def run(self, now: datetime) -> int:
        """Children first (events, then tasks, then the workflows left bare), each
        statement at most ``batch_size`` rows, at most ``batches`` statements."""
        if self.retention is None:
            return 0
        prunable = _prunable_workflows(now - self.retention)
        deleted = 0
        for _ in range(self.batches):
            count = self._delete_batch(prunable)
            deleted += count
            if count == 0:
                break
        if deleted:
            log.info("pruned %d finished engine rows", deleted)
        return deleted

    def _delete_batch(self, prunable: Select[int]) -> int:
        """One statement: the first of events, tasks, workflows that has rows to go."""
        limit = self.batch_size
        for model in (Event, Task):
            count = _delete_limited(self.db, model, model.workflow_id.in_(prunable), limit)
            if count:
                return count
        return _delete_limited(self.db, Workflow, Workflow.id.in_(prunable), limit)


def _prunable_workflows(cutoff: datetime) -> Select[int]:
    """Subject-less workflows finished before ``cutoff`` (the subject_id index finds them)."""
    return select(Workflow.id).where(
        Workflow.subject_id.is_(None),
        Workflow.state.in_(FINISHED_WORKFLOWS),
        Workflow.finished_at < cutoff,
    )


@retry_on_conflict
def _delete_limited(db: Database, model: Any, condition: ColumnElement[bool], limit: int) -> int:
    """DELETE at most ``limit`` rows of ``model`` matching ``condition``, in one short
    transaction (neither SQLite nor PostgreSQL has DELETE … LIMIT: an id subquery does)."""
    batch = select(model.id).where(condition).limit(limit).scalar_subquery()
    with db.write() as session:
        deleted = session.execute(delete(model).where(model.id.in_(batch)))
        return int(deleted.rowcount)  # type: ignore[attr-defined]
