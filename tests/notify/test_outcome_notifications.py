"""Outcome e-mails and admin alerts through the outbox, into real SMTP and HTTP servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from instance import LiveInstance, mailing_instance, upload, wait_for_outcome, wait_until
from receivers import AlertReceiver
from reelwatch.cli.mail import plain_text_body
from reelwatch.db.models import OutboxMessage
from reelwatch.engine import queue
from reelwatch.notify.sink import MailSink, StoredMail, list_mail, read_mail


def start_instance(
    tmp_path: Path,
    sink: MailSink,
    receiver: AlertReceiver | None = None,
    *,
    workers: int = 2,
    dispatchers: int = 1,
) -> LiveInstance:
    alert_url = receiver.url if receiver else ""
    return mailing_instance(tmp_path, sink, alert_url, workers=workers, dispatchers=dispatchers)


def mail_about(sink: MailSink, video: dict[str, Any]) -> list[StoredMail]:
    return [m for m in list_mail(sink.folder) if video["title"] in m.subject]


def outbox_states(instance: LiveInstance) -> list[str]:
    with instance.db.read() as session:
        return list(session.scalars(select(OutboxMessage.state)))


def test_each_outcome_sends_exactly_one_email(
    tmp_path: Path,
    sink: MailSink,
    good_samples: dict[str, Path],
    broken_samples: dict[str, Path],
) -> None:
    instance = start_instance(tmp_path, sink)
    try:
        client = instance.client("carol@example.com")
        good = upload(client, good_samples["h264"], title="holiday")
        bad = upload(client, broken_samples["random_bytes"], title="noise")
        assert wait_for_outcome(client, good["id"])["status"] == "ready"
        assert wait_for_outcome(client, bad["id"])["status"] == "failed"
        wait_until(lambda: mail_about(sink, good) and mail_about(sink, bad))
        wait_until(lambda: set(outbox_states(instance)) <= {"sent", "pending"})
        [ready] = mail_about(sink, good)
        [failed] = mail_about(sink, bad)
        assert ready.recipients == ["carol@example.com"] and "ready" in ready.subject
        body = sink_body(sink, failed)
        assert "not a video we can read" in body and "input_invalid" in body
        assert good["id"] in sink_body(sink, ready)
        kinds = [e["kind"] for e in client.get(f"/api/v1/videos/{good['id']}/events").json()]
        assert kinds.count("notification_queued") == 1
    finally:
        instance.stop()


def sink_body(sink: MailSink, mail: StoredMail) -> str:
    return plain_text_body(read_mail(sink.folder, mail.id))


def test_smtp_outage_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, sink: MailSink, good_samples: dict[str, Path]
) -> None:
    sink.refuse(True)
    instance = start_instance(tmp_path, sink)
    try:
        client = instance.client()
        videos = [upload(client, good_samples["h264"], title=f"clip {i}") for i in range(3)]
        for video in videos:
            assert wait_for_outcome(client, video["id"])["status"] == "ready"

        def tried_and_kept() -> bool:
            with instance.db.read() as session:
                rows = list(session.scalars(select(OutboxMessage)))
            return len(rows) == 3 and all(r.state != "sent" and r.attempts >= 1 for r in rows)

        wait_until(tried_and_kept)
        assert list_mail(sink.folder) == []
        sink.refuse(False)
        wait_until(lambda: outbox_states(instance) == ["sent"] * 3)
        assert all(len(mail_about(sink, video)) == 1 for video in videos)
    finally:
        instance.stop()


def test_admin_alert_groups_a_burst_of_failures(
    tmp_path: Path, sink: MailSink, receiver: AlertReceiver, broken_samples: dict[str, Path]
) -> None:
    instance = start_instance(tmp_path, sink, receiver, workers=2, dispatchers=0)
    try:
        client = instance.client()
        names = ["random_bytes", "text", "empty", "audio_only", "still_png"]
        videos = [upload(client, broken_samples[name]) for name in names]
        for video in videos:
            assert wait_for_outcome(client, video["id"])["status"] == "failed"
        # The burst is over before delivery starts, so it lands within one group wait
        # however slow the machine is.
        instance.add_dispatcher("dispatcher")
        wait_until(lambda: receiver.received, timeout=60)
        wait_until(lambda: all(s == "sent" for s in outbox_states(instance)), timeout=30)
        [alert] = receiver.received
        assert "5 videos failed" in alert["title"]
        assert all(video["id"] in alert["message"] for video in videos)
        assert "What to do" in alert["message"]
    finally:
        instance.stop()


def test_delay_notice_is_followed_by_exactly_one_final_email(
    tmp_path: Path, sink: MailSink, good_samples: dict[str, Path]
) -> None:
    instance = start_instance(tmp_path, sink, workers=0, dispatchers=0)
    try:
        client = instance.client()
        video = upload(client, good_samples["h264"], title="patience")
        original = instance.settings.media_root / "videos" / video["id"] / "original"
        hidden = original.with_name("hidden")
        original.rename(hidden)
        instance.add_worker(backoff_scale=1.0)  # a real backoff, long enough for a notice
        instance.add_dispatcher("after-outage")
        wait_until(
            lambda: client.get(f"/api/v1/videos/{video['id']}").json()["status"] == "retrying"
        )
        wait_until(lambda: mail_about(sink, video))
        [notice] = mail_about(sink, video)
        assert "delayed" in notice.subject
        hidden.rename(original)
        queue.wake_dependency_waiters(instance.db)  # what a worker does when storage is back
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
        wait_until(lambda: len(mail_about(sink, video)) == 2)
        subjects = [m.subject for m in mail_about(sink, video)]
        assert "delayed" in subjects[0] and "ready" in subjects[1]
    finally:
        instance.stop()


DISPATCH_ONCE = """
import os, signal, sys
from reelwatch.config import load_settings
from reelwatch.database import Database
from reelwatch.notify import dispatcher, outbox

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

# Die at the worst moment: {when}.
if "{when}" == "after-send":
    dispatcher.outbox.mark_sent = die
else:
    dispatcher.send_email = die
settings = load_settings()
db = Database(settings.resolved_database_url)
dispatcher.Dispatcher(db, settings, owner="doomed", lease_s=1).dispatch_due()
"""


@pytest.mark.parametrize("when", ["before-send", "after-send"])
def test_dispatcher_killed_mid_send_sends_exactly_once(
    tmp_path: Path, sink: MailSink, good_samples: dict[str, Path], when: str
) -> None:
    instance = start_instance(tmp_path, sink, dispatchers=0)
    try:
        client = instance.client()
        video = upload(client, good_samples["h264"], title=f"kill {when}")
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
        env = {
            "REELWATCH_HOME": str(instance.settings.home),
            "REELWATCH_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
            "PATH": "/usr/bin:/bin",
        }
        crashed = subprocess.run(
            [sys.executable, "-c", DISPATCH_ONCE.format(when=when)], env=env, timeout=60
        )
        assert crashed.returncode == -9
        assert outbox_states(instance) == ["sending"]
        instance.add_dispatcher("survivor")
        wait_until(lambda: outbox_states(instance) == ["sent"], timeout=30)
        assert len(mail_about(sink, video)) == 1
    finally:
        instance.stop()
