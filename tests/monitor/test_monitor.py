"""Leader election, alert rules and their delivery, on real databases and receivers."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from loads import IDLE
from receivers import AlertReceiver
from reelwatch.config import load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import Leadership, OutboxMessage
from reelwatch.engine.leadership import hold_lease, release_lease
from reelwatch.insights.load import Load
from reelwatch.monitor.rules import evaluate_rules
from reelwatch.monitor.service import Monitor


def test_one_leader_at_a_time_and_takeover_after_its_lease(db: Database) -> None:
    assert hold_lease(db, "monitor", "first", ttl_s=30)
    assert not hold_lease(db, "monitor", "second", ttl_s=30)
    assert hold_lease(db, "monitor", "first", ttl_s=30), "the holder renews"
    with db.write() as session:  # the first one died: its lease runs out
        session.execute(update(Leadership).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert hold_lease(db, "monitor", "second", ttl_s=30)
    assert not hold_lease(db, "monitor", "first", ttl_s=30)
    release_lease(db, "monitor", "second")
    assert hold_lease(db, "monitor", "third", ttl_s=30), "a clean release hands over at once"


def alert_subjects(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(OutboxMessage.subject).order_by(OutboxMessage.id)))


def test_rule_goes_pending_then_firing_once_then_resolved_once(db: Database) -> None:
    stuck = replace(IDLE, waiting_tasks=3)
    start = utcnow()

    def evaluate(load: Load, seconds: float) -> list[str]:
        with db.write() as session:
            return evaluate_rules(session, load, start + timedelta(seconds=seconds), "test")

    assert evaluate(stuck, 0) == [] and alert_subjects(db) == [], "a blip is only pending"
    assert evaluate(stuck, 10) == []
    assert evaluate(IDLE, 15) == [], "cleared before its 30 s: no alert at all"
    assert evaluate(stuck, 20) == []
    assert evaluate(stuck, 51) == ["no_live_worker"]
    assert evaluate(stuck, 56) == ["no_live_worker"]
    assert alert_subjects(db) == ["[reelwatch test] CRITICAL no_live_worker"]
    assert evaluate(IDLE, 60) == []
    assert evaluate(IDLE, 65) == []
    assert alert_subjects(db)[1:] == ["[reelwatch test] RESOLVED no_live_worker"]


def test_queued_video_without_workers_alerts_admins_and_resolves(
    tmp_path: Path, receiver: AlertReceiver, good_samples: dict[str, Path]
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=3,
        retry_backoff_scale=0.0,
        alert_urls=receiver.url,
        smtp_url="smtp://127.0.0.1:9",
        ping_interval_seconds=0,
        probe_interval_seconds=0,
    )
    instance = LiveInstance(settings, workers=0, dispatchers=1).start()
    monitors = [Monitor(instance.db, settings, name=f"monitor-{i}", interval_s=1) for i in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=m.run, args=(stop,), daemon=True) for m in monitors]
    for thread in threads:
        thread.start()
    try:
        client = instance.client()
        video = upload(client, good_samples["h264"])
        status = client.get("/api/v1/status").json()
        assert status["status"] == "degraded" and status["expected_queue_wait_s"] is None
        [alert] = wait_until(lambda: receiver.about("no_live_worker"), timeout=90)
        assert "CRITICAL" in alert["title"] and "Restart needed" in alert["message"]
        assert sum(m.leading for m in monitors) == 1
        overview = instance.client("root@example.com", admin=True).get("/api/v1/admin/overview")
        firing = [a["rule"] for a in overview.json()["alerts"] if a["state"] == "firing"]
        assert "no_live_worker" in firing
        instance.add_worker()
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
        wait_until(lambda: len(receiver.about("no_live_worker")) == 2, timeout=30)
        assert "RESOLVED no_live_worker" in receiver.about("no_live_worker")[1]["title"]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        instance.stop()
