"""Alerts about dead workers are not left to workers: the server and the monitor
deliver the outbox too, as real processes, with no worker alive anywhere."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from instance import wait_until
from receivers import AlertReceiver
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import OutboxMessage, WorkerRecord
from reelwatch.notify import outbox
from test_processes import UpProcess, reelwatch

pytestmark = pytest.mark.slow


def test_with_no_worker_a_waiting_video_alerts_the_admins(
    tmp_path: Path, receiver: AlertReceiver
) -> None:
    """``reelwatch up`` with no worker process: the monitor's rule fires after its 30 s
    and the alert is delivered by the server's or the monitor's dispatcher."""
    home = tmp_path / "home"
    up = UpProcess(
        home,
        REELWATCH_WORKERS="0",
        REELWATCH_ALERT_URLS=receiver.url,
        REELWATCH_MONITOR_INTERVAL_SECONDS="1",
        REELWATCH_PING_INTERVAL_SECONDS="0",
    ).start()
    try:
        assert up.workers() == []
        with up.client() as client:
            response = client.post("/api/v1/videos", files={"file": ("a.mp4", b"waits")})
            assert response.status_code == 201, response.text
        [alert] = wait_until(lambda: receiver.about("no_live_worker"), timeout=90, interval=0.5)
        assert "CRITICAL" in alert["title"]
        assert "tasks wait and no worker is alive" in alert["message"]
        db = Database(f"sqlite:///{home / 'reelwatch.db'}")
        try:
            with db.read() as session:
                assert session.scalars(select(WorkerRecord)).all() == [], "no worker ever ran"
                sender = session.scalar(
                    select(OutboxMessage.owner).where(OutboxMessage.key.contains("no_live_worker"))
                )
        finally:
            db.dispose()
        assert sender is not None and sender.endswith((":server", ":monitor:dispatcher"))
    finally:
        up.stop()
    assert up.process is not None and up.process.returncode == 0


@pytest.mark.parametrize("role", ["server", "monitor"])
def test_each_role_delivers_the_outbox_and_stops_cleanly(
    role: str, tmp_path: Path, receiver: AlertReceiver
) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'reelwatch.db'}"
    home.mkdir()
    upgrade_database(url)
    db = Database(url)
    env = {
        **os.environ,
        "REELWATCH_HOME": str(home),
        "REELWATCH_BIND": f"127.0.0.1:{UpProcess(home).port}",
        "REELWATCH_ALERT_URLS": receiver.url,
        "REELWATCH_PING_INTERVAL_SECONDS": "0",
        "REELWATCH_PROBE_INTERVAL_SECONDS": "0",
    }
    log = (home / f"{role}.log").open("w")
    process = subprocess.Popen(reelwatch(role), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with db.write() as session:
            message = outbox.Message(f"alert:{role}", outbox.ALERT, outbox.ADMINS, role, "body")
            outbox.enqueue(session, message)
        wait_until(lambda: [a for a in receiver.received if a["title"] == role], timeout=60)
        process.send_signal(signal.SIGTERM)
        # The server ends as uvicorn does, by the signal, once its dispatcher stopped.
        assert process.wait(timeout=45) in (0, -signal.SIGTERM)
        assert "Traceback" not in (home / f"{role}.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
        db.dispose()
