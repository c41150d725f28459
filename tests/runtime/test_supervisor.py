"""``up``'s supervisor keeps restarting a child that cannot stay up, and says so."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from instance import free_port, wait_until
from reelwatch.config import load_settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import OutboxMessage
from reelwatch.runtime import supervisor as supervision


def test_crash_looping_child_is_restarted_with_backoff_and_alerted_once(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        workers=0,
        smtp_url="smtp://127.0.0.1:9",
    )
    upgrade_database(settings.resolved_database_url)
    supervisor = supervision.Supervisor(settings)
    # A role whose command fails at once, like a worker with a broken installation.
    broken = supervision.Child("broken", 0, args=("no-such-command",))
    supervisor.children = [broken]
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    db = Database(settings.resolved_database_url)
    try:

        def alerts() -> list[str]:
            with db.read() as session:
                return list(session.scalars(select(OutboxMessage.body_text)))

        wait_until(lambda: broken.generation >= supervision.CRASH_LOOP_FAILURES + 1, timeout=30)
        wait_until(alerts)
        [alert] = alerts()
        assert "broken 0" in alert and "exited 3 times in a row" in alert
        assert "What to do" in alert
    finally:
        supervisor.stopping.set()
        thread.join(timeout=30)
        db.dispose()
    assert not thread.is_alive()
