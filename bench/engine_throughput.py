"""Engine throughput and pickup latency on SQLite and PostgreSQL (run on demand).

    python bench/engine_throughput.py [--tasks 2000] [--latency-samples 200]

Drains ``--tasks`` single-task no-op workflows with one real ``Worker`` (claim, lease,
heartbeat thread, completion, full checkpoint trail), and compares with a baseline
measured in the same run: the bare claim and complete UPDATEs a queue without audit
trail or workflows would issue. Then measures enqueue-to-start latency on an idle
worker. PostgreSQL is a throwaway cluster started for the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sqlalchemy import select, text

from pg import PostgresCluster
from reelwatch.db.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Event
from reelwatch.engine import queue
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow
from reelwatch.engine.worker import Worker


def _noop(ctx: TaskContext) -> dict[str, Any]:
    return {}


NOOP = register_workflow(WorkflowSpec("bench_noop", (TaskSpec("noop", _noop),)))


def enqueue(db: Database, count: int) -> None:
    with db.write() as session:
        for _ in range(count):
            queue.start_workflow(session, NOOP)


def drain_with_worker(db: Database, count: int) -> float:
    enqueue(db, count)
    worker = Worker(db, lease_s=30)
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    while worker.tasks_done < count:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    return count / elapsed


def drain_bare(db: Database, count: int) -> float:
    """The floor: one claim UPDATE and one complete UPDATE per task, nothing else."""
    with db.write() as session:
        session.execute(
            text("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, state TEXT)")
        )
        session.execute(text("DELETE FROM bare"))
        session.execute(
            text("INSERT INTO bare (id, state) VALUES (:i, 'queued')"),
            [{"i": i} for i in range(count)],
        )
    started = time.perf_counter()
    for _ in range(count):
        with db.write() as session:
            claimed = session.execute(
                text(
                    "UPDATE bare SET state='running' WHERE id = (SELECT id FROM bare WHERE "
                    "state='queued' ORDER BY id LIMIT 1) RETURNING id"
                )
            ).scalar_one()
        with db.write() as session:
            session.execute(text("UPDATE bare SET state='done' WHERE id=:i"), {"i": claimed})
    return count / (time.perf_counter() - started)


def pickup_latency_ms(db: Database, samples: int) -> list[float]:
    worker = Worker(db, lease_s=30)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    latencies = []
    for _ in range(samples):
        done = worker.tasks_done
        with db.write() as session:
            workflow = queue.start_workflow(session, NOOP)
        with db.read() as session:
            created = session.scalar(
                select(Event.at).where(
                    Event.workflow_id == workflow.id, Event.kind == "workflow_started"
                )
            )
        while worker.tasks_done == done:
            time.sleep(0.001)
        with db.read() as session:
            began = session.scalar(
                select(Event.at).where(
                    Event.workflow_id == workflow.id, Event.kind == "task_started"
                )
            )
        assert created is not None and began is not None
        latencies.append((began - created).total_seconds() * 1000)
        time.sleep(0.02)  # let the worker go idle again
    stop.set()
    thread.join()
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(label: str, url: str, tasks: int, latency_samples: int) -> None:
    upgrade_database(url)
    db = Database(url)
    engine_rate = drain_with_worker(db, tasks)
    bare_rate = drain_bare(db, tasks)
    latencies = pickup_latency_ms(db, latency_samples)
    db.dispose()
    print(
        f"{label:10} engine {engine_rate:8.0f} tasks/s   bare claim+complete {bare_rate:8.0f}/s"
        f"   ratio {engine_rate / bare_rate:5.2f}   pickup p50 "
        f"{statistics.median(latencies):5.1f} ms  p99 {percentile(latencies, 0.99):5.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run("sqlite", f"sqlite:///{folder}/bench.db", args.tasks, args.latency_samples)
    cluster = PostgresCluster.start()
    try:
        run("postgresql", cluster.create_database(), args.tasks, args.latency_samples)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
