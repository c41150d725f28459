"""Telling users upfront: maintenance windows, incidents, admission control, fair share."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from reelwatch.cli.main import app
from reelwatch.config import load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import AlertState, Event, Notice, OutboxMessage, Task
from reelwatch.engine.worker import Worker, WorkerConfig
from reelwatch.insights.load import read_load
from reelwatch.monitor.rules import evaluate_rules
from reelwatch.monitor.service import Monitor
from reelwatch.notices.service import (
    AUTOMATIC,
    POSTPONING,
    RETRYING,
    announce_maintenance,
    close_notice,
    schedule_maintenance,
    sync_auto_incidents,
)
from reelwatch.notices.status import read_status
from reelwatch.notify.sink import MailSink, list_mail
from reelwatch.timewords import parse_moment, parse_span, span_in_words


@pytest.fixture
def instance(tmp_path: Path, sink: MailSink) -> Iterator[LiveInstance]:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=3,
        retry_backoff_scale=0.0,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        ping_interval_seconds=0,
        probe_interval_seconds=0,
    )
    live = LiveInstance(settings, workers=0, dispatchers=1).start()
    yield live
    live.stop()


def window(db: Database, uploads: str, *, start: float, end: float) -> int:
    """A maintenance window from now+start to now+end seconds."""
    now = utcnow()
    with db.write() as session:
        return schedule_maintenance(
            session,
            starts_at=now + timedelta(seconds=start),
            ends_at=now + timedelta(seconds=end),
            message="We are moving to a bigger disk.",
            uploads=uploads,
            by="test",
            now=now,
        ).id


def public_status(instance: LiveInstance) -> dict[str, Any]:
    response = instance.client().get("/api/v1/status", headers={"Authorization": ""})
    return response.json()  # type: ignore[no-any-return]


def test_a_window_turns_the_status_to_maintenance_at_its_start_and_back_at_its_end(
    instance: LiveInstance,
) -> None:
    window(instance.db, AUTOMATIC, start=1.5, end=3.5)
    before = public_status(instance)
    assert before["status"] == "operational" and before["notices"] == []
    assert before["upcoming"][0]["message"] == "We are moving to a bigger disk."
    wait_until(lambda: public_status(instance)["status"] == "maintenance", timeout=10)
    assert public_status(instance)["notices"][0]["kind"] == "maintenance"
    wait_until(lambda: public_status(instance)["status"] == "operational", timeout=10)
    assert public_status(instance)["notices"] == []


def test_retrying_refuses_uploads_with_retry_after_and_the_message(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    window(instance.db, RETRYING, start=0, end=7200)
    with good_samples["h264"].open("rb") as handle:
        response = instance.client().post("/api/v1/videos", files={"file": ("a.mp4", handle)})
    assert response.status_code == 503
    assert 7000 <= int(response.headers["Retry-After"]) <= 7200
    message = response.json()["error"]["message"]
    assert "under maintenance until" in message and "bigger disk" in message
    assert "Please upload again in about 2 hours" in message


def test_automatic_accepts_and_holds_until_the_window_ends_then_processes(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    notice_id = window(instance.db, AUTOMATIC, start=0, end=3600)
    instance.add_worker()
    client = instance.client()
    video = upload(client, good_samples["h264"])
    assert "processing starts when it ends" in video["warning"]
    with instance.db.read() as session:
        held = session.scalars(select(Task.run_at).where(Task.name == "probe")).one()
        started = session.scalars(select(Event).where(Event.kind == "workflow_started")).one()
    assert held > utcnow() + timedelta(minutes=59), "held for the window"
    assert "held_until" in started.data, "the timeline says so"
    assert client.get(f"/api/v1/videos/{video['id']}").json()["status"] == "queued"
    result = CliRunner().invoke(
        app, ["maintenance", "cancel", str(notice_id)], env=cli_env(instance)
    )
    assert result.exit_code == 0 and "1 held uploads released" in result.output
    assert wait_for_outcome(client, video["id"])["status"] == "ready"


def test_postponing_refuses_and_the_uploader_gets_exactly_one_back_email(
    instance: LiveInstance, sink: MailSink, good_samples: dict[str, Path]
) -> None:
    notice_id = window(instance.db, POSTPONING, start=0, end=3600)
    anonymous = instance.client()
    anonymous.headers.pop("Authorization")
    subscribed = anonymous.post("/api/v1/status/subscribe", json={"email": "Carol@Example.com"})
    assert subscribed.status_code == 202
    with good_samples["h264"].open("rb") as handle:
        refused = instance.client().post("/api/v1/videos", files={"file": ("a.mp4", handle)})
    assert refused.status_code == 503
    assert "we will e-mail you once when the service is back" in refused.json()["error"]["message"]
    monitor = Monitor(instance.db, instance.settings)
    monitor.run_round()
    assert back_mail(sink) == [], "still in maintenance: nobody is told yet"
    with instance.db.write() as session:
        close_notice(session, notice_id, utcnow())
    for _ in range(3):
        monitor.run_round()
    wait_until(lambda: len(back_mail(sink)) == 2)
    assert sorted(back_mail(sink)) == [["alice@example.com"], ["carol@example.com"]]
    monitor.run_round()
    assert len(back_mail(sink)) == 2, "exactly one each"
    again = anonymous.post("/api/v1/status/subscribe", json={"email": "dan@example.com"})
    assert again.status_code == 409, "nothing to wait for while operational"


def back_mail(sink: MailSink) -> list[list[str]]:
    return [
        mail.recipients for mail in list_mail(sink.folder) if mail.subject == "reelwatch is back"
    ]


def test_maintenance_is_mailed_upfront_once_to_recently_active_users(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    upload(instance.client("active@example.com"), good_samples["h264"])
    instance.token("idle@example.com")
    notice_id = window(instance.db, RETRYING, start=3600, end=7200)
    now = utcnow()
    with instance.db.write() as session:
        notice = session.get_one(Notice, notice_id)
        for _ in range(2):
            announce_maintenance(
                session, notice, active_within=timedelta(days=30), public_url="http://x", now=now
            )
    with instance.db.read() as session:
        mails = session.scalars(select(OutboxMessage).where(OutboxMessage.key.like("%maint%")))
        [mail] = mails.all()
    assert mail.recipient == "active@example.com"
    assert "Planned maintenance" in mail.subject and "bigger disk" in mail.body_text
    assert "uploads are refused; please upload again after it ends" in mail.body_text


def test_service_failures_open_an_incident_that_clears_by_itself_input_failures_do_not(
    instance: LiveInstance, broken_samples: dict[str, Path], good_samples: dict[str, Path]
) -> None:
    instance.add_worker(backoff_scale=0)
    client = instance.client()
    for name in ["random_bytes", "text", "empty", "audio_only"]:  # users' broken files
        video = upload(client, broken_samples[name])
        assert wait_for_outcome(client, video["id"])["status"] == "failed"

    def evaluate(seconds: float) -> list[str]:
        """The rules as the monitor would see them ``seconds`` from now."""
        with instance.db.write() as session:
            load = read_load(session, lease_s=3)
            now = utcnow() + timedelta(seconds=seconds)
            firing = evaluate_rules(session, load, now, "test")
            sync_auto_incidents(session, firing, now)
            return firing

    with instance.db.read() as session:
        load = read_load(session, lease_s=3)
    assert load.failures_last_hour == {"service": 0, "input": 4}
    assert load.service_failure_ratio == 0 and load.input_failure_ratio == 1
    evaluate(-301)
    assert "failure_ratio_high" not in evaluate(0), "customers' bad files are not an outage"
    assert public_status(instance)["status"] == "operational"

    # The service fails: each original vanishes from storage before processing.
    instance.stop_processing()
    hidden = [upload(client, good_samples["h264"]) for _ in range(6)]
    for video in hidden:
        original = instance.settings.media_root / "videos" / video["id"] / "original"
        original.rename(original.with_name("hidden"))
    instance.add_worker(backoff_scale=0)
    for video in hidden:
        failed = wait_for_outcome(client, video["id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "storage_unavailable"
    with instance.db.read() as session:
        assert read_load(session, lease_s=3).failures_last_hour == {"service": 6, "input": 4}
    evaluate(-301)  # pending since five minutes ago (the rule's "for")
    assert "failure_ratio_high" in evaluate(0)
    status = public_status(instance)
    assert status["status"] == "degraded"
    [incident] = status["notices"]
    assert incident["source"] == "failure_ratio_high" and incident["components"] == []
    assert "failing more than usual" in incident["message"]
    for _ in range(4):  # recovery: good videos bring the ratio down
        video = upload(client, good_samples["h264"])
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
    evaluate(0)
    after = public_status(instance)
    assert after["status"] == "operational" and after["notices"] == []


def test_a_long_queue_refuses_an_upload_with_the_wait_in_words(
    tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        admission_max_wait_seconds=10,
        admission_policy="refuse",
    )
    live = LiveInstance(settings, workers=0).start()
    # A worker that is alive but busy elsewhere (another queue): the wait is bounded
    # and long.
    elsewhere = Worker(live.db, WorkerConfig(lease_s=3, queues=("elsewhere",)))
    stop = threading.Event()
    thread = threading.Thread(target=elsewhere.run, args=(stop,), daemon=True)
    thread.start()
    try:
        client = live.client()
        wait_until(lambda: public_status(live)["queue"]["live_workers"] == 1)
        upload(client, good_samples["h264"])
        with good_samples["h264"].open("rb") as handle:
            refused = client.post("/api/v1/videos", files={"file": ("b.mp4", handle)})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        message = refused.json()["error"]["message"]
        assert "reelwatch is busy: a new upload would wait about" in message
        assert "Please try again in about" in message
        assert int(refused.headers["Retry-After"]) >= 60
    finally:
        stop.set()
        thread.join(timeout=30)
        live.stop()


def test_one_users_burst_does_not_starve_another(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    burst = [upload(instance.client("burst@example.com"), good_samples["h264"]) for _ in range(3)]
    single = upload(instance.client("single@example.com"), good_samples["h264"])
    instance.add_worker()
    for video in [*burst, single]:
        wait_for_outcome(instance.client("root@example.com", admin=True), video["id"])
    with instance.db.read() as session:
        finished = list(
            session.scalars(
                select(Event.subject_id)
                .where(Event.kind == "workflow_succeeded")
                .order_by(Event.id)
            )
        )
    assert finished.index(single["id"]) < finished.index(burst[1]["id"]), finished


def test_the_cli_schedules_lists_and_cancels_a_window(instance: LiveInstance) -> None:
    runner = CliRunner()
    env = cli_env(instance)
    made = runner.invoke(
        app,
        ["maintenance", "schedule", "--start", "+1h", "--end", "+3h", "--message", "Disk swap"],
        env=env,
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(app, ["maintenance", "list"], env=env)
    assert "Disk swap" in listed.output and "automatic" in listed.output
    bad = runner.invoke(
        app,
        ["maintenance", "schedule", "--start", "+3h", "--end", "+1h", "--message", "x"],
        env=env,
    )
    assert bad.exit_code == 1 and "must end after it starts" in bad.output
    assert runner.invoke(app, ["maintenance", "cancel", "1"], env=env).exit_code == 0
    # Not a terminal: one line a notice, so none at all now.
    assert runner.invoke(app, ["maintenance", "list"], env=env).stdout == ""


def test_the_cli_opens_an_incident_on_components_and_updates_it(instance: LiveInstance) -> None:
    runner = CliRunner()
    env = cli_env(instance)
    incident = ["incidents", "open", "--message", "Slow thumbnails"]
    opened = runner.invoke(app, [*incident, "--components", "storage, Database"], env=env)
    assert opened.exit_code == 0, opened.output
    assert "affecting database, storage" in opened.output
    unknown = runner.invoke(app, [*incident, "--components", "storage,disks"], env=env)
    assert unknown.exit_code == 1 and "unknown component disks" in unknown.output
    for message in ("Investigating.", "Found: a full disk."):
        updated = runner.invoke(app, ["incidents", "update", "1", "--message", message], env=env)
        assert updated.exit_code == 0, updated.output
    assert (
        runner.invoke(app, ["incidents", "update", "9", "--message", "x"], env=env).exit_code == 1
    )
    [notice] = public_status(instance)["notices"]
    assert notice["components"] == ["database", "storage"]
    assert [u["message"] for u in notice["updates"]] == ["Found: a full disk.", "Investigating."]
    whole = runner.invoke(app, ["incidents", "open", "--message", "Everything"], env=env)
    assert "affecting the service as a whole" in whole.output
    assert runner.invoke(app, ["incidents", "resolve", "1"], env=env).exit_code == 0
    resolved = runner.invoke(app, ["incidents", "update", "1", "--message", "late"], env=env)
    assert resolved.exit_code == 1 and "no open incident 1" in resolved.output


def cli_env(instance: LiveInstance) -> dict[str, str]:
    return {
        "REELWATCH_HOME": str(instance.settings.home),
        "REELWATCH_DATABASE_URL": instance.settings.resolved_database_url,
        "COLUMNS": "200",
    }


def test_times_read_like_people_write_them() -> None:
    now = datetime(2026, 11, 29, 12, 0)
    assert parse_moment("now", now) == now
    assert parse_moment("+2h", now) == datetime(2026, 11, 29, 14, 0)
    assert parse_moment("2026-12-01T22:00", now) == datetime(2026, 12, 1, 22, 0)
    assert parse_moment("2026-12-01T23:00+01:00", now) == datetime(2026, 12, 1, 22, 0)
    assert parse_span("90s").total_seconds() == 90
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_moment("tomorrow", now)
    assert span_in_words(45 * 60) == "about 45 minutes"
    assert span_in_words(7200) == "about 2 hours"


def test_status_reads_down_during_an_emergency(db: Database) -> None:
    now = utcnow()
    with db.write() as session:
        session.add(AlertState(rule="no_live_worker", state="firing", since=now, value="x"))
    with db.read() as session:
        assert read_status(session, lease_s=3, now=now).status == "down"
