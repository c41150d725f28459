"""Routing task kinds to tagged workers, growing and shrinking workers with the queue,
and alerting while the database is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from receivers import AlertReceiver
from reelwatch.cli.main import app
from reelwatch.config import ConfigError, load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import Task, WorkerRecord
from reelwatch.monitor.outage import DatabaseOutage
from reelwatch.runtime.autoscale import (
    GROW_AFTER_WAIT_S,
    SHRINK_AFTER_IDLE_S,
    Autoscaler,
    Pressure,
    parse_bounds,
    queue_pressure,
)

BUSY = Pressure(waiting_tasks=5, oldest_wait_s=GROW_AFTER_WAIT_S + 1)
FRESH = Pressure(waiting_tasks=5, oldest_wait_s=1.0)
IDLE = Pressure(waiting_tasks=0, oldest_wait_s=0.0)


def test_the_autoscaler_grows_on_waiting_and_shrinks_after_a_quiet_minute() -> None:
    scaler = Autoscaler(1, 3)
    assert scaler.decide(FRESH, 1, now=0) == 0, "a task that just arrived is no pressure"
    assert scaler.decide(BUSY, 1, now=5) == 1
    assert scaler.decide(BUSY, 3, now=10) == 0, "never above MAX"
    assert scaler.decide(IDLE, 3, now=15) == 0
    assert scaler.decide(IDLE, 3, now=15 + SHRINK_AFTER_IDLE_S) == -1
    assert scaler.decide(IDLE, 2, now=20 + SHRINK_AFTER_IDLE_S) == 0, "one step per quiet minute"
    assert scaler.decide(IDLE, 1, now=1000) == 0, "never below MIN"
    assert parse_bounds("1,4") == (1, 4)
    for bad in ("4,1", "x", "0,0"):
        with pytest.raises(ValueError):
            parse_bounds(bad)


def test_transcodes_go_to_the_workers_tagged_for_them(
    tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=3,
        task_queues="transcode=gpu",
    )
    instance = LiveInstance(settings, workers=1).start()  # on "default" only
    try:
        client = instance.client()
        video = upload(client, good_samples["h264"])

        def transcodes_waiting() -> bool:
            with instance.db.read() as session:
                rows = session.execute(select(Task.kind, Task.state, Task.queue)).all()
            return {(k, s, q) for k, s, q in rows if k == "transcode"} == {
                ("transcode", "queued", "gpu")
            } and ("thumbnail", "succeeded", "default") in rows

        wait_until(transcodes_waiting)
        instance.add_worker(queues=("gpu",))
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
    finally:
        instance.stop()
    with pytest.raises(ConfigError, match="REELWATCH_TASK_QUEUES"):
        load_settings(task_queues="transcode")


def test_database_outage_alerts_once_then_says_it_is_back(receiver: AlertReceiver) -> None:
    settings = load_settings(
        alert_urls=receiver.url, env="staging", database_outage_alert_seconds=0
    )
    outage = DatabaseOutage("monitor-1", settings)
    outage.failed("connection refused")
    outage.failed("connection refused")
    outage.recovered()
    outage.recovered()
    titles = [alert["title"] for alert in receiver.received]
    assert titles == [
        "[reelwatch staging] CRITICAL database unreachable",
        "[reelwatch staging] RESOLVED database unreachable",
    ]
    assert "connection refused" in receiver.received[0]["message"]


def test_worker_autoscale_grows_its_processes_under_a_backlog(
    tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "REELWATCH_HOME": str(home),
        "REELWATCH_BIND": f"127.0.0.1:{free_port()}",
        "REELWATCH_LEASE_SECONDS": "3",
    }
    settings = load_settings(home=home, bind=env["REELWATCH_BIND"])
    instance = LiveInstance(settings, workers=0).start()  # the API, no workers of its own
    client = instance.client()
    for _ in range(10):
        upload(client, good_samples["h264"])
    # A backlog that has waited long enough to call for more workers.
    wait_until(lambda: oldest_wait_s(instance.db) > GROW_AFTER_WAIT_S + 1, timeout=60)
    workers = subprocess.Popen(
        [sys.executable, "-m", "reelwatch", "worker", "--autoscale", "1,3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: live_workers(instance.db) >= 2, timeout=90)
    finally:
        workers.terminate()
        workers.wait(timeout=60)
        instance.stop()
    assert workers.returncode == 0


def oldest_wait_s(db: Database) -> float:
    with db.read() as session:
        return queue_pressure(session, ("default",), utcnow()).oldest_wait_s


def live_workers(db: Database) -> int:
    with db.read() as session:
        states = session.scalars(select(WorkerRecord.state)).all()
    return sum(state not in ("stopped", "lost") for state in states)


def test_an_admin_drains_a_worker_through_the_cli(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}")
    instance = LiveInstance(settings, workers=0).start()
    worker = instance.add_worker()
    worker.presence.interval_s = 0.1
    try:
        env = {
            "REELWATCH_URL": instance.url,
            "REELWATCH_TOKEN": instance.token("root@example.com", admin=True),
        }
        wait_until(lambda: live_workers(instance.db) == 1)
        drained = CliRunner().invoke(app, ["workers", "drain", worker.id], env=env)
        assert drained.exit_code == 0 and "is draining" in drained.output, drained.output
        wait_until(lambda: live_workers(instance.db) == 0, timeout=30)
        unknown = CliRunner().invoke(app, ["workers", "drain", "nobody"], env=env)
        assert unknown.exit_code == 1 and "no running worker nobody" in unknown.output
    finally:
        instance.stop()
