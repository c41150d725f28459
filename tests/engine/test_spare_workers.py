"""Spare capacity: live workers of a queue, less its running and due tasks."""

from __future__ import annotations

from datetime import timedelta

from reelwatch.database import Database, utcnow
from reelwatch.engine import queue
from reelwatch.engine.schema import Task, WorkerRecord, Workflow


def worker(name: str, queues: str, beat_age_s: float, state: str = "idle") -> WorkerRecord:
    now = utcnow()
    return WorkerRecord(
        id=name,
        hostname="h",
        pid=1,
        queues=queues,
        state=state,
        started_at=now,
        heartbeat_at=now - timedelta(seconds=beat_age_s),
    )


def task(workflow: Workflow, name: str, state: str, queue_name: str = "transcode") -> Task:
    return Task(
        workflow_id=workflow.id,
        name=name,
        kind=name,
        timeout_s=60,
        state=state,
        queue=queue_name,
        run_at=utcnow() - timedelta(seconds=1),
        created_at=utcnow(),
    )


def test_spare_workers_count_live_workers_of_the_queue_less_its_work(db: Database) -> None:
    with db.write() as session:
        session.add_all(
            [
                worker("a", "probe,transcode", 1),
                worker("b", "transcode", 2),
                worker("c", "transcode", 1),
                worker("stale", "transcode", 60),  # missed its beats: not counted on
                worker("gone", "transcode", 1, state="stopped"),
                worker("other", "probe", 1),
            ]
        )
        workflow = Workflow(name="w", state="running", created_at=utcnow())
        session.add(workflow)
        session.flush()
        asking = task(workflow, "probe", "running")
        session.add_all([asking, task(workflow, "first", "queued")])
        session.add(task(workflow, "thumbnail", "queued", queue_name="probe"))
        session.flush()
        asking_id = asking.id

    def spare(excluding: int | None) -> int:
        with db.read() as session:
            return queue.spare_workers(
                session,
                "transcode",
                now=utcnow(),
                presence_interval_s=5,
                excluding_task=excluding,
            )

    assert spare(asking_id) == 2  # a, b, c; one task waits
    assert spare(None) == 1  # the asking task still runs
    with db.write() as session:
        session.add(worker("d", "transcode", 0))
        session.add(worker("e", "transcode", 0))
    assert spare(asking_id) == 4
