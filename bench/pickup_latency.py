"""Pickup latency: from enqueueing a task to its start on an idle worker, p50 and p99.

    python -m bench.pickup_latency [--samples 500] [--quick]

One idle reelwatch worker process; the benchmark starts one no-op workflow at a time
(its own transaction), then leaves the worker idle for 20 to 40 ms before the next. The
latency is ``task_started.at - workflow_started.at`` from the checkpoint trail (both
stamped on this machine's clock; the enqueue stamp is taken before its commit). SQLite
workers notice new work through ``PRAGMA data_version``, PostgreSQL ones through
LISTEN/NOTIFY. The peers in the same run: Celery + Redis (one prefork child) and
pgqueuer (one process), each stamping its own pickup the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import select

from bench import common, peers
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Event, WorkerRecord
from reelwatch.engine import queue

GOAL_P50_MS = 5.0
GOAL_P99_MS = 20.0


def idle_pause() -> None:
    time.sleep(random.uniform(0.02, 0.04))


def reelwatch_latencies(url: str, samples: int, logs: Path) -> list[float]:
    upgrade_database(url)
    db = Database(url)
    try:
        with common.Processes(logs) as processes:
            command = [sys.executable, "-m", "bench.peers", "reelwatch", url, "--name", "idle"]
            processes.start("reelwatch", command)
            common.wait_until(lambda: _worker_idle(db), timeout=60)
            time.sleep(0.5)
            for _ in range(samples):
                with db.write() as session:
                    queue.start_workflow(session, peers.NOOP_WORKFLOW)
                idle_pause()
            common.wait_until(lambda: len(_started(db)) >= samples, timeout=60)
        return [(_started(db)[wf] - at).total_seconds() * 1000 for wf, at in _enqueued(db).items()]
    finally:
        db.dispose()


def _worker_idle(db: Database) -> bool:
    with db.read() as session:
        return session.scalar(select(WorkerRecord.state)) == "idle"


def _enqueued(db: Database) -> dict[int, datetime]:
    with db.read() as session:
        rows = session.execute(
            select(Event.workflow_id, Event.at).where(Event.kind == "workflow_started")
        )
        return {int(wf or 0): at for wf, at in rows}


def _started(db: Database) -> dict[int, datetime]:
    with db.read() as session:
        rows = session.execute(
            select(Event.workflow_id, Event.at).where(Event.kind == "task_started")
        )
        return {int(wf or 0): at for wf, at in rows}


def celery_latencies(samples: int, logs: Path) -> list[float]:
    import redis

    with common.Processes(logs) as processes:
        url = common.redis_server(processes)
        peers.celery_app.conf.broker_url = url
        command = [sys.executable, "-m", "celery", "-A", "bench.peers:celery_app", "worker"]
        command += ["--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        processes.start("celery", command, env={"BENCH_REDIS_URL": url})
        common.wait_until(lambda: peers.celery_app.control.ping(timeout=0.5), timeout=60)
        time.sleep(0.5)
        for _ in range(samples):
            peers.celery_stamp.delay(time.time())
            idle_pause()
        client = redis.Redis.from_url(url)
        common.wait_until(lambda: client.llen(peers.LATENCY_KEY) >= samples, timeout=60)
        values = [float(v) * 1000 for v in client.lrange(peers.LATENCY_KEY, 0, -1)]
        client.close()
    return values


def pgqueuer_latencies(url: str, samples: int, logs: Path) -> list[float]:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    asyncio.run(peers.install_pgqueuer(dsn))
    with common.Processes(logs) as processes, psycopg.connect(dsn, autocommit=True) as sql:
        command = [sys.executable, "-m", "bench.peers", "pgqueuer", dsn]
        process = processes.start("pgqueuer", command, stdout=subprocess.PIPE)
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"pgqueuer worker failed:\n{processes.log_of('pgqueuer')}")

        async def enqueue_all() -> None:
            from pgqueuer.queries import Queries

            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                queries = Queries.from_psycopg_connection(conn)
                for _ in range(samples):
                    await queries.enqueue("stamp", None)
                    await asyncio.sleep(random.uniform(0.02, 0.04))

        asyncio.run(enqueue_all())

        def recorded() -> list[float]:
            rows = sql.execute("SELECT latency_s FROM bench_pickup").fetchall()
            return [float(row[0]) * 1000 for row in rows]

        common.wait_until(lambda: len(recorded()) >= samples, timeout=60)
        return recorded()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--samples", type=int, default=500, help="tasks per system")
    parser.add_argument("--quick", action="store_true", help="100 samples")
    common.add_database_option(parser)
    parser.add_argument("--no-peers", action="store_true", help="skip Celery and pgqueuer")
    args = parser.parse_args()
    samples = 100 if args.quick else args.samples

    common.heading(f"pickup latency: {samples} tasks, one idle worker")
    results: dict[str, common.Latency] = {}
    with common.scratch("pickup") as folder, common.postgres() as cluster:
        for kind in common.chosen_databases(args.database):
            url = common.database_url(kind, folder, cluster)
            values = reelwatch_latencies(url, samples, folder / f"logs-{kind}")
            results[kind] = common.Latency.of(values)
            common.line(f"reelwatch {kind}", str(results[kind]))
        if not args.no_peers:
            results["celery"] = common.Latency.of(celery_latencies(samples, folder / "logs-c"))
            common.line("celery + redis", str(results["celery"]))
            values = pgqueuer_latencies(cluster.create_database(), samples, folder / "logs-p")
            results["pgqueuer"] = common.Latency.of(values)
            common.line("pgqueuer (postgresql)", str(results["pgqueuer"]))
    for kind in common.DATABASES:
        if kind not in results:
            continue
        ours = results[kind]
        for peer in ("celery", "pgqueuer"):
            if peer in results:
                theirs = results[peer]
                common.line(
                    f"reelwatch {kind} / {peer}",
                    f"p50 {ours.p50 / theirs.p50:5.2f}x  p99 {ours.p99 / theirs.p99:5.2f}x",
                )
        met = ours.p50 < GOAL_P50_MS and ours.p99 < GOAL_P99_MS
        common.verdict(f"{kind}: p50 < {GOAL_P50_MS:g} ms and p99 < {GOAL_P99_MS:g} ms", met)


if __name__ == "__main__":
    main()
