"""A PostgreSQL primary killed mid-processing and its synchronous standby promoted.

Two clusters on loopback: a primary and a standby made from it with ``pg_basebackup -R``,
named in the primary's ``synchronous_standby_names``. A server, two workers, a
dispatcher and a monitor (threads of this process) use the multi-host URL an operator
would write. The primary dies (``pg_ctl stop -m immediate``) while tasks run; once the
monitor has alerted that the database is unreachable, the standby is promoted. Every
accepted video ends ``ready`` with one e-mail, the admins hear of the failover, LISTEN
follows the new primary, and the takeover figures are printed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

import samples
from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from pg import PostgresCluster
from receivers import AlertReceiver
from reelwatch.config import load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import CheckState, Event, Task
from reelwatch.engine.notifier import PostgresNotifier
from reelwatch.engine.queue import NOTIFY_CHANNEL
from reelwatch.monitor.failover import TIMELINE_CHECK
from reelwatch.monitor.service import Monitor
from reelwatch.notify.sink import MailSink, list_mail

pytestmark = pytest.mark.slow

VIDEOS = 4


@pytest.fixture
def clusters() -> Iterator[tuple[PostgresCluster, PostgresCluster, str]]:
    """A primary, its synchronous standby, and the URL naming both."""
    primary = PostgresCluster.start()
    standby: PostgresCluster | None = None
    try:
        database = make_url(primary.create_database()).database
        standby = PostgresCluster.start_standby(primary)
        hosts = f"host=127.0.0.1:{primary.port}&host=127.0.0.1:{standby.port}"
        yield (
            primary,
            standby,
            (
                f"postgresql+psycopg://postgres@/{database}?{hosts}"
                "&target_session_attrs=read-write&connect_timeout=3"
            ),
        )
    finally:
        primary.stop()
        if standby is not None:
            standby.stop()


def test_standby_promoted_mid_processing_takes_over_and_loses_nothing(
    tmp_path: Path,
    receiver: AlertReceiver,
    sink: MailSink,
    clusters: tuple[PostgresCluster, PostgresCluster, str],
) -> None:
    primary, standby, url = clusters
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        database_url=url,
        lease_seconds=3,
        retry_backoff_scale=0.0,
        alert_urls=receiver.url,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        ping_interval_seconds=0,
        probe_interval_seconds=0,
        database_outage_alert_seconds=1,
    )
    video_file = samples.make_sample(samples.GOOD_SAMPLES["h264"], tmp_path)
    instance = LiveInstance(settings, workers=2, dispatchers=1).start()
    monitor = Monitor(instance.db, settings, name="monitor", interval_s=0.5)
    stop_monitor = threading.Event()
    monitor_thread = threading.Thread(target=monitor.run, args=(stop_monitor,), daemon=True)
    monitor_thread.start()
    notifier = PostgresNotifier(instance.db)  # as every idle worker's
    try:
        client = instance.client()
        wait_until(lambda: seen_timeline(instance.db) == 1, timeout=30)
        titles = [f"failover-{i}" for i in range(VIDEOS)]
        videos = [upload(client, video_file, title) for title in titles]
        wait_until(lambda: running_tasks(instance.db), timeout=30)

        primary.kill()
        [down] = wait_until(lambda: receiver.about("unreachable"), timeout=30)
        assert "CRITICAL" in down["title"]
        assert client.get("/api/v1/videos").status_code == 503
        standby.promote()
        promoted, promoted_at = time.monotonic(), utcnow()
        wait_until(lambda: answers(client), timeout=60, interval=0.02)
        api_s = time.monotonic() - promoted

        outcomes = [wait_for_outcome(client, video["id"]) for video in videos]
        assert [video["status"] for video in outcomes] == ["ready"] * VIDEOS
        claim_s = (first_claim_after(instance.db, promoted_at) - promoted_at).total_seconds()

        [failover] = wait_until(lambda: receiver.about("database_failover"), timeout=30)
        assert "timeline 2" in failover["message"] and "standby" in failover["message"]
        wait_until(lambda: receiver.about("unreachable")[1:], timeout=30)
        assert "RESOLVED" in receiver.about("unreachable")[1]["title"]

        def ready_mail() -> Counter[str]:
            return Counter(m.subject for m in list_mail(sink.folder) if "ready" in m.subject)

        wait_until(lambda: sum(ready_mail().values()) == VIDEOS, timeout=60)
        assert ready_mail() == Counter(f"Your video is ready: {title}" for title in titles)

        wake_s = notify_latency(notifier, standby, str(instance.db.url.database))
        pickup_s = pickup_latency(client, instance.db, video_file)
        print(
            f"\nfailover: API answers {api_s:.2f} s after the promotion, first task claimed "
            f"{claim_s:.2f} s after it; on the new primary LISTEN wakes in "
            f"{wake_s * 1000:.0f} ms, a new upload's first task is claimed "
            f"{pickup_s * 1000:.0f} ms after the upload's commit"
        )
        assert wake_s < 0.5, "LISTEN, not the one-second fallback, woke the notifier"
        assert len(receiver.about("database_failover")) == 1, "one alert, not one per round"
    finally:
        notifier.close()
        stop_monitor.set()
        monitor_thread.join(timeout=30)
        instance.stop()


def seen_timeline(db: Database) -> float | None:
    with db.read() as session:
        check = session.get(CheckState, TIMELINE_CHECK)
        return check.value if check else None


def running_tasks(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).where(Task.state == "running")) or 0


def answers(client: httpx.Client) -> bool:
    return client.get("/api/v1/videos").status_code == 200


def first_claim_after(db: Database, moment: datetime) -> datetime:
    with db.read() as session:
        started = session.scalar(
            select(func.min(Event.at)).where(Event.kind == "task_started", Event.at > moment)
        )
    assert started is not None, "no task was claimed after the promotion"
    return started


def notify_latency(
    notifier: PostgresNotifier, new_primary: PostgresCluster, database: str
) -> float:
    """Seconds from a NOTIFY on the new primary to the wake-up of a notifier that was
    listening to the old one."""

    def listens_to_new_primary() -> bool:
        notifier.wait(0.05)  # the first waits find the old connection dead and reconnect
        return notifier.listening_on() == f"127.0.0.1:{new_primary.port}"

    wait_until(listens_to_new_primary, timeout=30)
    with psycopg.connect(new_primary.dsn(database), autocommit=True) as connection:
        started = time.monotonic()
        connection.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    notifier.wait(10)
    return time.monotonic() - started


def pickup_latency(client: httpx.Client, db: Database, video_file: Path) -> float:
    """Seconds from a new upload's commit to its first task's claim, on the new primary."""
    video = upload(client, video_file, "after-failover")
    assert wait_for_outcome(client, video["id"])["status"] == "ready"
    with db.read() as session:
        at = dict(
            session.execute(
                select(Event.kind, func.min(Event.at))
                .where(Event.subject_id == video["id"])
                .group_by(Event.kind)
            ).all()
        )
    return float((at["task_started"] - at["workflow_started"]).total_seconds())
