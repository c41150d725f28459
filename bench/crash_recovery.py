"""Crash recovery: SIGKILL a worker mid-task, and time until the task runs again.

    python -m bench.crash_recovery [--lease-seconds 30] [--repeats 3] [--quick]

A 720p video is uploaded to a real instance; while a worker is in the middle of its
transcode (ffmpeg running, progress reported), that worker process gets SIGKILL (its
ffmpeg dies with it). Measured: from the kill to the ``task_started`` checkpoint of the
next attempt. Two deployments:

- standalone workers (``reelwatch server`` + ``reelwatch worker`` x2, as on several
  machines): nobody sees the death, so the task waits for its lease
  (``REELWATCH_LEASE_SECONDS``) to run out; the surviving idle worker looks for expired
  leases every second and takes the task over. Goal: under lease + 1 s.
- ``reelwatch up``: the supervisor sees its child die and re-queues its task at once.

The peer, in the same run: Celery + Redis (acks_late, one prefork child) whose worker is
SIGKILLed mid-task and restarted at once; Redis gives the unacknowledged task to another
worker only after its visibility timeout (one hour by default; here set to the same
lease, ``--lease-seconds``) and Celery's periodic scan for such tasks.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import select

from bench import common, peers
from reelwatch.database import Database, utcnow
from reelwatch.db.models import Event, Task, WorkerRecord, Workflow


def running_transcode(db: Database, video_id: str) -> tuple[Task, int] | None:
    """The video's transcode once it is running and has made progress, with its worker's
    pid."""
    with db.read() as session:
        row = session.execute(
            select(Task, WorkerRecord.pid)
            .join(Workflow, Workflow.id == Task.workflow_id)
            .join(WorkerRecord, WorkerRecord.id == Task.worker_id)
            .where(
                Workflow.subject_id == video_id,
                Task.kind == "transcode",
                Task.state == "running",
                Task.progress >= 0.05,
            )
        ).first()
    return (row[0], int(row[1])) if row else None


def restarted_at(db: Database, video_id: str, task: Task) -> datetime | None:
    with db.read() as session:
        return session.scalar(
            select(Event.at).where(
                Event.subject_id == video_id,
                Event.kind == "task_started",
                Event.task == task.name,
                Event.attempt > task.attempt,
            )
        )


def kill_mid_task(db: Database, client: httpx.Client, clip: Path) -> tuple[float, str]:
    """Upload, SIGKILL the worker in the transcode, return (seconds until the re-run, its
    worker's id)."""
    video_id = common.upload(client, clip)["id"]
    task, pid = common.wait_until(lambda: running_transcode(db, video_id), timeout=120)
    killed_at = utcnow()
    os.kill(pid, signal.SIGKILL)
    again = common.wait_until(lambda: restarted_at(db, video_id, task), timeout=600, interval=0.02)
    client.delete(f"/api/v1/videos/{video_id}")  # frees the worker for the next round
    return (again - killed_at).total_seconds(), task.worker_id or ""


def standalone(kind: str, lease_s: float, repeats: int, clip: Path, folder: Path) -> list[float]:
    settings = {"REELWATCH_LEASE_SECONDS": f"{lease_s:g}", "REELWATCH_RENDITIONS": "720"}
    seconds = []
    with common.Processes(folder / "logs") as processes, common.postgres_if(kind) as cluster:
        url = common.database_url(kind, folder, cluster)
        instance = common.Instance(processes, folder / "home", url, settings=settings)
        instance.start(workers=2)
        db = Database(url)
        try:
            with instance.client() as client:
                for round_ in range(repeats):
                    recovered, killed = kill_mid_task(db, client, clip)
                    seconds.append(recovered)
                    instance.add_worker(f"bench-replacement-{round_}")  # as an operator would
                    processes.stop(instance.workers.pop(killed), grace_s=0)
        finally:
            db.dispose()
    return seconds


def under_up(kind: str, lease_s: float, repeats: int, clip: Path, folder: Path) -> list[float]:
    seconds = []
    with common.Processes(folder / "logs") as processes, common.postgres_if(kind) as cluster:
        url = common.database_url(kind, folder, cluster)
        instance = common.Instance(
            processes,
            folder / "home",
            url,
            settings={
                "REELWATCH_LEASE_SECONDS": f"{lease_s:g}",
                "REELWATCH_RENDITIONS": "720",
                "REELWATCH_WORKERS": "2",
            },
        )
        processes.start("up", instance.reelwatch("up"), env=instance.env)
        common.wait_until(lambda: _ready(instance), timeout=60, interval=0.2)
        db = Database(url)
        try:
            with instance.client() as client:
                for _ in range(repeats):
                    seconds.append(kill_mid_task(db, client, clip)[0])
                    time.sleep(3)  # the supervisor restarts the killed worker
        finally:
            db.dispose()
    return seconds


def _ready(instance: common.Instance) -> bool:
    try:
        return httpx.get(f"{instance.url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def celery_recovery(visibility_s: float, folder: Path) -> float | None:
    """Seconds from SIGKILL of a Celery worker mid-task (and its immediate restart) to
    the task's next start; None when it did not run again within the wait."""
    import redis

    with common.Processes(folder / "logs") as processes:
        url = common.redis_server(processes)
        peers.celery_app.conf.broker_url = url
        env = {"BENCH_REDIS_URL": url, "BENCH_VISIBILITY_TIMEOUT": f"{visibility_s:g}"}
        command = [sys.executable, "-m", "celery", "-A", "bench.peers:celery_app", "worker"]
        command += ["--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING"]
        first = processes.start("celery-1", command, env=env)
        common.wait_until(lambda: peers.celery_app.control.ping(timeout=0.5), timeout=60)
        client = redis.Redis.from_url(url)
        peers.celery_sleepy.delay(3600)
        common.wait_until(lambda: client.llen(peers.STARTS_KEY) >= 1, timeout=30)
        time.sleep(1)
        killed_at = time.time()
        os.killpg(first.pid, signal.SIGKILL)
        processes.start("celery-2", command, env=env)
        try:
            common.wait_until(
                lambda: client.llen(peers.STARTS_KEY) >= 2, timeout=visibility_s + 150, interval=0.1
            )
        except TimeoutError:
            return None
        started = float(client.lindex(peers.STARTS_KEY, 1) or 0)
        client.close()
        return started - killed_at


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--lease-seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3, help="kills per deployment")
    parser.add_argument("--quick", action="store_true", help="5 s lease, one kill, no Celery")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery peer")
    common.add_database_option(parser)
    args = parser.parse_args()
    lease_s, repeats = (5.0, 1) if args.quick else (args.lease_seconds, args.repeats)

    common.heading(f"crash recovery: SIGKILL mid-transcode, lease {lease_s:g} s, {repeats}x each")
    with common.scratch("crash") as folder:
        clip = common.make_videos(folder / "clip", 1, duration_s=30, width=1280, height=720)[0]
        for kind in common.chosen_databases(args.database):
            times = standalone(kind, lease_s, repeats, clip, folder / f"standalone-{kind}")
            common.line(
                f"{kind}, standalone workers (lease)",
                "  ".join(f"{t:6.2f} s" for t in times) + f"   (lease + 1 s = {lease_s + 1:g} s)",
            )
            common.verdict(f"{kind}: re-run within lease + 1 s", max(times) < lease_s + 1)
            times = under_up(kind, lease_s, repeats, clip, folder / f"up-{kind}")
            common.line(f"{kind}, under reelwatch up", "  ".join(f"{t:6.2f} s" for t in times))
        if not (args.quick or args.no_celery):
            celery = celery_recovery(lease_s, folder / "celery")
            text = f"{celery:6.2f} s" if celery is not None else f"not within {lease_s + 150:g} s"
            common.line(f"celery + redis, visibility timeout {lease_s:g} s", text)
            common.line("celery + redis, default visibility timeout", "3600 s + its scan")


if __name__ == "__main__":
    main()
