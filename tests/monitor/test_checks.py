"""Checks, their history and alerts, silences, the ping and the end-to-end probe."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from loads import IDLE
from receivers import AlertReceiver
from reelwatch.config import load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import CheckState, CheckTransition, OutboxMessage, Video
from reelwatch.insights.alerts import list_alerts
from reelwatch.insights.checks import CRITICAL, OK, CheckResult, forget_checks, record_check
from reelwatch.insights.load import WorkerView
from reelwatch.insights.silences import add_silence
from reelwatch.monitor import checks
from reelwatch.monitor.probe import CHECK_NAME, EndToEndProbe
from reelwatch.monitor.rules import evaluate_rules
from reelwatch.monitor.service import Monitor
from reelwatch.notify.sink import MailSink, list_mail

DOWN = CheckResult(CRITICAL, "media store /x is not writable: Read-only file system")
UP = CheckResult(OK, "writable, 50 % of its disk free", 50.0)


def alert_subjects(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(OutboxMessage.subject).order_by(OutboxMessage.id)))


def step(db: Database, seconds: float, result: CheckResult | None = None) -> list[str]:
    """At start + ``seconds``: record the storage check's ``result``, evaluate the rules."""
    at = START + timedelta(seconds=seconds)
    with db.write() as session:
        if result:
            record_check(session, "storage", result, at)
        return evaluate_rules(session, IDLE, at, "test")


START = utcnow()


def test_a_component_down_alerts_after_a_minute_and_up_again_resolves(db: Database) -> None:
    assert step(db, 0, DOWN) == []
    assert step(db, 30, DOWN) == [], "a minute's grace: no alert on a blip"
    assert step(db, 61, DOWN) == ["check:storage"]
    assert step(db, 70, DOWN) == ["check:storage"]
    assert alert_subjects(db) == ["[reelwatch test] CRITICAL check:storage"]
    with db.read() as session:
        body = session.scalars(select(OutboxMessage.body_text)).one()
    assert "Read-only file system" in body and "What to do: Make the media folder" in body
    assert step(db, 80, UP) == []
    assert alert_subjects(db)[1:] == ["[reelwatch test] RESOLVED check:storage"]
    with db.read() as session:
        history = [t.state for t in session.scalars(select(CheckTransition))]
        current = session.get(CheckState, "storage")
    assert history == ["critical", "ok"], "one history row per change, not per run"
    assert current is not None and current.value == 50.0


def test_a_silence_mutes_a_rule_and_it_alerts_when_the_silence_ends(db: Database) -> None:
    with db.write() as session:
        add_silence(
            session, "check:*", timedelta(minutes=10), by="root", comment="disk swap", now=START
        )
    step(db, 0, DOWN)
    assert step(db, 61, DOWN) == ["check:storage"], "silenced rules still fire"
    assert alert_subjects(db) == [], "but send nothing"
    with db.read() as session:
        [alert] = list_alerts(session, START + timedelta(seconds=61))
    assert alert["state"] == "firing" and alert["silenced_until"] is not None
    step(db, 601, DOWN)
    assert alert_subjects(db) == ["[reelwatch test] CRITICAL check:storage"]


def test_a_check_that_goes_away_resolves_its_alert(db: Database) -> None:
    with db.write() as session:
        record_check(session, "worker:w1", CheckResult(CRITICAL, "no heartbeat"), START)
    step(db, 0)
    step(db, 61)
    assert alert_subjects(db) == ["[reelwatch test] CRITICAL check:worker:w1"]
    with db.write() as session:
        forget_checks(session, lambda name: not name.startswith("worker:"))
    assert step(db, 62) == []
    assert alert_subjects(db)[1:] == ["[reelwatch test] RESOLVED check:worker:w1"]


def test_worker_and_node_checks_read_the_heartbeats() -> None:
    calm = WorkerView("a:1", "a", "idle", 1.0, None, True, {"disk_free_percent": 50.0})
    full = WorkerView("b:1", "b", "busy", 2.0, 7, True, {"disk_free_percent": 4.5})
    tight = WorkerView("c:1", "c", "busy", 2.0, 7, True, {"memory_percent": 93.0})
    dead = WorkerView("d:1", "d", "busy", 99.0, 8, False, {"disk_free_percent": 1.0})
    gone = WorkerView("e:1", "e", "stopped", 999.0, None, False, {})
    load = replace(IDLE, workers=[calm, full, tight, dead, gone])

    workers = checks.worker_checks(load)
    assert {name: r.state for name, r in workers.items()} == {
        "worker:a:1": "ok",
        "worker:b:1": "ok",
        "worker:c:1": "ok",
        "worker:d:1": "critical",
    }, "a worker that stopped cleanly has no check"
    nodes = checks.node_checks(load, {"disk_free_percent": 80.0})
    assert nodes["node:b"].state == "critical"
    assert nodes["node:b"].detail == "disk_free_percent 4.5 (below 5)"
    assert nodes["node:c"].state == "warning"
    assert nodes["node:a"].state == "ok"
    assert "node:d" not in nodes, "a dead worker's last figures are stale"


def test_ping_and_end_to_end_probe_pass_then_the_probe_fails_and_alerts_without_workers(
    tmp_path: Path, sink: MailSink, receiver: AlertReceiver
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=3,
        retry_backoff_scale=0.0,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        alert_urls=receiver.url,
        ping_interval_seconds=1,
        probe_interval_seconds=0,  # this test runs the probe itself
        probe_timeout_seconds=90,
    )
    instance = LiveInstance(settings, workers=1, dispatchers=1).start()
    monitor = Monitor(instance.db, settings, interval_s=0.5)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        ping = wait_until(lambda: check_state(instance.db, "ping_ffmpeg"), timeout=60)
        assert ping.state == "ok" and "encoded a test clip" in ping.detail

        passed = EndToEndProbe(instance.db, settings).run(stop)
        assert passed.state == "ok", passed.detail
        assert "e-mail accepted" in passed.detail and passed.value is not None
        assert [m.recipients for m in list_mail(sink.folder)] == [[settings.probe_email]]
        with instance.db.read() as session:
            assert session.scalars(select(Video)).all() == [], "the probe cleans up"

        instance.stop_processing()
        hurried = settings.model_copy(update={"probe_timeout_seconds": 4.0})
        failed = EndToEndProbe(instance.db, hurried).run(stop)
        assert failed.state == "critical"
        assert "still queued at the deadline" in failed.detail
        [alert] = wait_until(lambda: receiver.about(f"check:{CHECK_NAME}"), timeout=60)
        assert "CRITICAL" in alert["title"] and "the step that failed" in alert["message"]
    finally:
        stop.set()
        thread.join(timeout=30)
        instance.stop()


def test_overview_lists_every_check_and_customer_activity(
    tmp_path: Path, sink: MailSink, good_samples: dict[str, Path]
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=3,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        ping_interval_seconds=1,
        probe_interval_seconds=0,
    )
    instance = LiveInstance(settings, workers=1, dispatchers=1).start()
    monitor = Monitor(instance.db, settings, interval_s=0.5)
    try:
        client = instance.client()
        video = upload(client, good_samples["h264"])
        for _ in range(3):
            monitor.run_round()
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
        wait_until(
            lambda: (monitor.run_round() or True) and check_state(instance.db, "ping_ffmpeg")
        )
        admin = instance.client("root@example.com", admin=True)
        overview = admin.get("/api/v1/admin/overview").json()
        names = {check["name"] for check in overview["checks"]}
        assert {"database", "storage", "smtp", "ffmpeg", "monitor", "ping_ffmpeg"} <= names
        assert [u["email"] for u in overview["activity"]] == ["alice@example.com"]
        assert overview["activity"][0]["uploads"] == 1
    finally:
        instance.stop()


def check_state(db: Database, name: str) -> CheckState | None:
    with db.read() as session:
        return session.get(CheckState, name)
