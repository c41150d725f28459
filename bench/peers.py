"""The peers the engine is measured against, and the reelwatch worker for no-op tasks.

- Celery + Redis: ``celery_app`` (acks_late, results ignored: Celery's fastest setting),
  run by ``celery -A bench.peers:celery_app worker --pool prefork --concurrency 2``.
- pgqueuer on the same PostgreSQL: ``python -m bench.peers pgqueuer DSN``.
- reelwatch: ``python -m bench.peers reelwatch URL --name N``, a real ``Worker`` process
  running the benchmark's one-task no-op workflow.

Each worker kind has a no-op task and a ``stamp`` task that records how long after its
enqueueing it started (pickup latency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow
from reelwatch.engine.worker import BATCH_SIZE

LATENCY_KEY = "bench:pickup"
STARTS_KEY = "bench:starts"

# --- Celery + Redis -------------------------------------------------------------------

celery_app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
celery_app.conf.update(
    task_acks_late=True,  # like reelwatch, a task is not lost when its worker dies
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # Redis re-delivers a dead worker's unacknowledged task after this (default one hour).
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("BENCH_VISIBILITY_TIMEOUT", "3600"))
    },
)


@celery_app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def celery_noop() -> None:
    return None


@celery_app.task(name="bench.stamp")  # type: ignore[untyped-decorator]
def celery_stamp(sent_at: float) -> None:
    """Record the pickup latency (seconds on this machine's clock) in Redis."""
    started = time.time()
    import redis

    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    client.rpush(LATENCY_KEY, started - sent_at)


@celery_app.task(name="bench.sleepy")  # type: ignore[untyped-decorator]
def celery_sleepy(seconds: float) -> None:
    """Record each start in Redis, then sleep: the task a crash interrupts."""
    import redis

    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    client.rpush(STARTS_KEY, time.time())
    time.sleep(seconds)


# --- reelwatch ------------------------------------------------------------------------


def _noop(ctx: TaskContext) -> dict[str, Any]:
    return {}


NOOP_WORKFLOW = register_workflow(WorkflowSpec("bench_noop", (TaskSpec("noop", _noop),)))


def run_reelwatch_worker(url: str, name: str, lease_s: float, batch_size: int) -> None:
    from reelwatch.database import Database
    from reelwatch.engine.worker import Worker, WorkerConfig

    db = Database(url, pool_size=3)
    worker = Worker(
        db,
        WorkerConfig(lease_s=lease_s, name=name, batch_size=batch_size),
        workflows={NOOP_WORKFLOW.name: NOOP_WORKFLOW},
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        worker.run(stop)
    finally:
        db.dispose()


# --- pgqueuer -------------------------------------------------------------------------


async def run_pgqueuer_worker(dsn: str, batch_size: int) -> None:
    import psycopg
    from pgqueuer import Job, QueueManager
    from pgqueuer.queries import Queries

    connection = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    manager = QueueManager(Queries.from_psycopg_connection(connection))

    @manager.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @manager.entrypoint("stamp")
    async def stamp(job: Job) -> None:
        # created is the enqueueing transaction's now(), on this machine's clock.
        latency_s = (datetime.now(UTC) - job.created).total_seconds()
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as recorder:
            await recorder.execute("INSERT INTO bench_pickup (latency_s) VALUES (%s)", (latency_s,))

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, manager.shutdown.set)
    running = asyncio.create_task(manager.run(batch_size=batch_size))
    await asyncio.sleep(1.0)  # past the schema check and LISTEN
    print("ready", flush=True)
    await running
    await connection.close()


async def install_pgqueuer(dsn: str) -> None:
    import psycopg
    from pgqueuer.queries import Queries

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await Queries.from_psycopg_connection(connection).install()
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS bench_pickup (latency_s double precision)"
        )


async def enqueue_pgqueuer(dsn: str, entrypoint: str, count: int) -> None:
    """``count`` jobs in one statement (pgqueuer's batch enqueue)."""
    import psycopg
    from pgqueuer.queries import Queries

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        queries = Queries.from_psycopg_connection(connection)
        await queries.enqueue([entrypoint] * count, [None] * count, [0] * count)


def main() -> None:
    parser = argparse.ArgumentParser(description="Worker processes for the engine benchmarks.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    reelwatch = kinds.add_parser("reelwatch", help="a reelwatch worker running no-op tasks")
    reelwatch.add_argument("url", help="SQLAlchemy database URL")
    reelwatch.add_argument("--name", required=True)
    reelwatch.add_argument("--lease-seconds", type=float, default=30.0)
    reelwatch.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help="quick tasks claimed at once"
    )
    pgqueuer = kinds.add_parser("pgqueuer", help="a pgqueuer QueueManager running no-op jobs")
    pgqueuer.add_argument("dsn", help="libpq connection string")
    pgqueuer.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    if args.kind == "reelwatch":
        run_reelwatch_worker(args.url, args.name, args.lease_seconds, args.batch_size)
    else:
        asyncio.run(run_pgqueuer_worker(args.dsn, args.batch_size))


if __name__ == "__main__":
    main()
