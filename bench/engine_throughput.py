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
``--rounds N`` repeats every system N times, alternately, and prints the median and
range. Beside the rate, the CPU time its worker processes used per task (user + system,
from psutil): on a noisy machine it moves far less than the wall-clock rate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import psycopg
from sqlalchemy import func, select

from bench import common, peers
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Event, Workflow
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
    worker_cpu_s: float = float("nan")

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_us_per_task(self) -> float:
        return self.worker_cpu_s / self.tasks * 1e6


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU the processes (and their children) have used so far."""
    total = 0.0
    for process in processes:
        for each in [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]:
            times = each.cpu_times()
            total += times.user + times.system
    return total


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
            common.wait_until(lambda: common.idle_workers(db) >= workers, timeout=60)
            cpu_before = cpu_seconds(processes.started)
            _, enqueue_s = common.timed(lambda: enqueue_reelwatch(db, tasks))
            started = time.perf_counter()
            common.wait_until(lambda: _unfinished_workflows(db) == 0, timeout=60 + tasks / 20)
            seconds = time.perf_counter() - started
            cpu_s = cpu_seconds(processes.started) - cpu_before
        with db.read() as session:
            events = session.scalar(select(func.count()).select_from(Event)) or 0
    finally:
        db.dispose()
    if events < EVENTS_PER_TASK * tasks:
        raise RuntimeError(f"audit trail incomplete: {events} events for {tasks} tasks")
    return Drain(tasks, seconds, enqueue_s, f"{events / tasks:.0f} events/task kept", cpu_s)


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
        cpu_before = cpu_seconds(started_workers)
        _, enqueue_s = common.timed(lambda: asyncio.run(peers.enqueue_pgqueuer(dsn, "noop", tasks)))
        started = time.perf_counter()

        def queue_empty() -> bool:
            row = sql.execute("SELECT count(*) FROM pgqueuer").fetchone()
            return row is not None and row[0] == 0

        common.wait_until(queue_empty, timeout=60 + tasks / 20, interval=0.02)
        seconds = time.perf_counter() - started
        cpu_s = cpu_seconds(started_workers) - cpu_before
    return Drain(tasks, seconds, enqueue_s, "status log in pgqueuer_log", cpu_s)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per system")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per system")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every system, alternately")
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
    results: dict[str, list[Drain]] = {}
    with common.scratch("engine") as folder, common.postgres() as cluster:
        for round_ in range(args.rounds):
            logs = folder / f"logs-{round_}"
            for kind in common.chosen_databases(args.database):
                (folder / f"{kind}-{round_}").mkdir()
                url = common.database_url(kind, folder / f"{kind}-{round_}", cluster)
                drain = drain_reelwatch(url, tasks, args.workers, logs / kind, args.batch_size)
                _record(results, f"reelwatch {kind}", drain)
            if not args.no_celery:
                _record(results, "celery", drain_celery(tasks, args.workers, logs / "celery"))
            if not args.no_pgqueuer:
                url = cluster.create_database()
                drain = drain_pgqueuer(url, tasks, args.workers, logs / "pgq")
                _record(results, "pgqueuer", drain)
    if args.rounds > 1:
        common.heading(f"median of {args.rounds} rounds (range)")
        for label, drains in results.items():
            _show_rounds(label, drains)
    _compare(results)


def _record(results: dict[str, list[Drain]], label: str, drain: Drain) -> None:
    results.setdefault(label, []).append(drain)
    common.line(
        label,
        f"{drain.rate:8.0f} tasks/s  ({drain.seconds:6.2f} s;"
        f" enqueue {drain.enqueue_seconds:5.2f} s;"
        f" workers' CPU {drain.cpu_us_per_task:4.0f} us/task; {drain.note})",
    )


def _show_rounds(label: str, drains: list[Drain]) -> None:
    def spread(values: list[float], unit: str, digits: int = 0) -> str:
        return (
            f"{statistics.median(values):.{digits}f} {unit}"
            f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
        )

    common.line(
        label,
        f"{spread([d.rate for d in drains], 'tasks/s')}; "
        f"enqueue {spread([d.enqueue_seconds for d in drains], 's', 2)}; "
        f"CPU {spread([d.cpu_us_per_task for d in drains], 'us/task')}",
    )


def _compare(results: dict[str, list[Drain]]) -> None:
    def median(label: str, figure: str) -> float:
        return float(statistics.median(getattr(drain, figure) for drain in results[label]))

    for kind in common.DATABASES:
        ours = f"reelwatch {kind}"
        if ours not in results:
            continue
        if "celery" in results:
            ratio = median(ours, "rate") / median("celery", "rate")
            common.line(f"{ours} / celery", f"{ratio:5.2f}x")
            common.verdict(f"{ours} >= 2x Celery", ratio >= 2.0)
        if "pgqueuer" in results:
            ratio = median(ours, "rate") / median("pgqueuer", "rate")
            common.line(f"{ours} / pgqueuer", f"{ratio:5.2f}x")
            common.verdict(f"{ours} >= pgqueuer", ratio >= 1.0)
    if "reelwatch postgresql" in results and "pgqueuer" in results:
        ratio = median("reelwatch postgresql", "enqueue_seconds") / median(
            "pgqueuer", "enqueue_seconds"
        )
        common.line("enqueue time, reelwatch postgresql / pgqueuer", f"{ratio:5.2f}x")
        common.verdict("enqueueing on PostgreSQL within 2x pgqueuer's batch enqueue", ratio <= 2.0)


if __name__ == "__main__":
    main()
