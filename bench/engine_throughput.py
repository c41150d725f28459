"""Engine throughput: no-op tasks drained by reelwatch against Celery + Redis and pgqueuer.

    python -m bench.engine_throughput [--tasks 20000] [--workers 2] [--batch-size 50] [--quick]

reelwatch drains ``--tasks`` one-task no-op workflows with ``--workers`` real worker
processes (claim with a lease, heartbeat thread, completion, and the full checkpoint
trail: workflow_started, task_queued, task_started, task_succeeded, workflow_succeeded),
on SQLite and on PostgreSQL. The peers drain as many no-op tasks in the same run: Celery
with Redis (acks_late, prefork, concurrency ``--workers``, results ignored) and pgqueuer
(``--workers`` processes, its default batch of 10) on the same PostgreSQL cluster.

Every system gets the same start: its workers are up and idle, the whole batch is
enqueued at once (one transaction, or for Celery a queue nobody consumes yet), and the
clock runs from the moment the workers may take it until the last task is done.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import func, select

from bench import common, peers
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Event, WorkerRecord, Workflow
from reelwatch.engine import queue, states
from reelwatch.engine.worker import BATCH_SIZE

AUDIT_KINDS = ("workflow_started", "task_queued", "task_started", "task_succeeded")
EVENTS_PER_TASK = len(AUDIT_KINDS) + 1  # and workflow_succeeded


@dataclass(frozen=True)
class Drain:
    tasks: int
    seconds: float
    enqueue_seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


def enqueue_reelwatch(db: Database, count: int) -> None:
    """``count`` no-op workflows in one transaction."""
    with db.write() as session:
        queue.start_workflows(session, [queue.WorkflowStart(peers.NOOP_WORKFLOW)] * count)


def drain_reelwatch(url: str, tasks: int, workers: int, logs: Path, batch_size: int) -> Drain:
    upgrade_database(url)
    db = Database(url)
    try:
        with common.Processes(logs) as processes:
            for index in range(workers):
                command = [sys.executable, "-m", "bench.peers", "reelwatch", url]
                command += ["--name", f"bench-{index}", "--batch-size", str(batch_size)]
                processes.start(f"reelwatch-{index}", command)
            common.wait_until(lambda: _idle_workers(db) >= workers, timeout=60)
            _, enqueue_s = common.timed(lambda: enqueue_reelwatch(db, tasks))
            started = time.perf_counter()
            common.wait_until(lambda: _unfinished_workflows(db) == 0, timeout=60 + tasks / 20)
            seconds = time.perf_counter() - started
        with db.read() as session:
            events = session.scalar(select(func.count()).select_from(Event)) or 0
    finally:
        db.dispose()
    if events < EVENTS_PER_TASK * tasks:
        raise RuntimeError(f"audit trail incomplete: {events} events for {tasks} tasks")
    return Drain(tasks, seconds, enqueue_s, f"{events / tasks:.0f} events/task kept")


def _idle_workers(db: Database) -> int:
    with db.read() as session:
        query = select(func.count()).where(WorkerRecord.state == "idle")
        return int(session.scalar(query) or 0)


def _unfinished_workflows(db: Database) -> int:
    with db.read() as session:
        query = select(func.count()).where(Workflow.state == states.WF_RUNNING)
        return int(session.scalar(query) or 0)


def drain_celery(tasks: int, workers: int, logs: Path) -> Drain:
    import redis

    with common.Processes(logs) as processes:
        url = common.redis_server(processes)
        peers.celery_app.conf.broker_url = url
        command = [sys.executable, "-m", "celery", "-A", "bench.peers:celery_app", "worker"]
        command += ["--pool", "prefork", "--concurrency", str(workers), "--queues", "warmup"]
        command += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
        processes.start("celery", [*command, "--without-heartbeat"], env={"BENCH_REDIS_URL": url})
        common.wait_until(lambda: peers.celery_app.control.ping(timeout=0.5), timeout=60)
        client = redis.Redis.from_url(url)

        def enqueue() -> None:
            for _ in range(tasks):
                peers.celery_noop.apply_async(queue="bench")

        _, enqueue_s = common.timed(enqueue)
        started = time.perf_counter()
        peers.celery_app.control.add_consumer("bench")  # no reply: do not wait for one
        common.wait_until(
            lambda: client.llen("bench") == 0 and client.hlen("unacked") == 0,
            timeout=60 + tasks / 20,
            interval=0.02,
        )
        seconds = time.perf_counter() - started
        client.close()
    return Drain(tasks, seconds, enqueue_s, "no result backend")


def drain_pgqueuer(url: str, tasks: int, workers: int, logs: Path) -> Drain:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    asyncio.run(peers.install_pgqueuer(dsn))
    with common.Processes(logs) as processes, psycopg.connect(dsn, autocommit=True) as sql:
        started_workers = [
            processes.start(
                f"pgqueuer-{index}",
                [sys.executable, "-m", "bench.peers", "pgqueuer", dsn],
                stdout=subprocess.PIPE,
            )
            for index in range(workers)
        ]
        for process in started_workers:
            assert process.stdout is not None
            if process.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"pgqueuer worker failed:\n{processes.log_of('pgqueuer-0')}")
        _, enqueue_s = common.timed(lambda: asyncio.run(peers.enqueue_pgqueuer(dsn, "noop", tasks)))
        started = time.perf_counter()

        def queue_empty() -> bool:
            row = sql.execute("SELECT count(*) FROM pgqueuer").fetchone()
            return row is not None and row[0] == 0

        common.wait_until(queue_empty, timeout=60 + tasks / 20, interval=0.02)
        seconds = time.perf_counter() - started
    return Drain(tasks, seconds, enqueue_s, "status log in pgqueuer_log")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per system")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per system")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        help="quick tasks a reelwatch worker claims at once (1: one transaction per task)",
    )
    common.add_database_option(parser)
    parser.add_argument("--no-celery", action="store_true", help="skip Celery + Redis")
    parser.add_argument("--no-pgqueuer", action="store_true", help="skip pgqueuer")
    args = parser.parse_args()
    tasks = 2_000 if args.quick else args.tasks

    common.heading(f"engine throughput: {tasks} no-op tasks, {args.workers} workers each")
    results: dict[str, Drain] = {}
    with common.scratch("engine") as folder, common.postgres() as cluster:
        for kind in common.chosen_databases(args.database):
            url = common.database_url(kind, folder, cluster)
            results[f"reelwatch {kind}"] = drain_reelwatch(
                url, tasks, args.workers, folder / f"logs-{kind}", args.batch_size
            )
            _show(f"reelwatch {kind}", results[f"reelwatch {kind}"])
        if not args.no_celery:
            results["celery"] = drain_celery(tasks, args.workers, folder / "logs-celery")
            _show("celery + redis (acks_late, prefork)", results["celery"])
        if not args.no_pgqueuer:
            url = cluster.create_database()
            results["pgqueuer"] = drain_pgqueuer(url, tasks, args.workers, folder / "logs-pgq")
            _show("pgqueuer (postgresql)", results["pgqueuer"])
    _compare(results)


def _show(label: str, drain: Drain) -> None:
    common.line(
        label,
        f"{drain.rate:8.0f} tasks/s  ({drain.seconds:6.2f} s;"
        f" enqueue {drain.enqueue_seconds:5.1f} s; {drain.note})",
    )


def _compare(results: dict[str, Drain]) -> None:
    for kind in common.DATABASES:
        ours = results.get(f"reelwatch {kind}")
        if ours is None:
            continue
        if "celery" in results:
            ratio = ours.rate / results["celery"].rate
            common.line(f"reelwatch {kind} / celery", f"{ratio:5.2f}x")
            common.verdict(f"reelwatch {kind} >= 2x Celery", ratio >= 2.0)
        if "pgqueuer" in results:
            ratio = ours.rate / results["pgqueuer"].rate
            common.line(f"reelwatch {kind} / pgqueuer", f"{ratio:5.2f}x")
            common.verdict(f"reelwatch {kind} >= pgqueuer", ratio >= 1.0)


if __name__ == "__main__":
    main()
