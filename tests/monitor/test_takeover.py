"""Two ``reelwatch monitor`` processes: one leads; SIGKILL it and the other takes over
within one lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from instance import wait_until
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Leadership
from reelwatch.insights.checks import MONITOR_LEASE

INTERVAL_S = 1.0
LEASE_S = 3 * INTERVAL_S


def test_second_monitor_takes_over_within_one_lease_when_the_first_is_killed(
    tmp_path: Path, database_url: str
) -> None:
    upgrade_database(database_url)
    db = Database(database_url)
    env = {
        **os.environ,
        "REELWATCH_HOME": str(tmp_path / "home"),
        "REELWATCH_DATABASE_URL": database_url,
        "REELWATCH_MONITOR_INTERVAL_SECONDS": str(INTERVAL_S),
        "REELWATCH_PING_INTERVAL_SECONDS": "0",
        "REELWATCH_PROBE_INTERVAL_SECONDS": "0",
    }
    monitors = {
        name: subprocess.Popen(
            [sys.executable, "-m", "reelwatch", "monitor", "--name", name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("first", "second")
    }

    def holder() -> str | None:
        with db.read() as session:
            lease = session.get(Leadership, MONITOR_LEASE)
            return lease.holder if lease else None

    try:
        leader = wait_until(holder, timeout=60)
        monitors[leader].send_signal(signal.SIGKILL)
        monitors[leader].wait(timeout=10)
        killed_at = time.monotonic()
        successor = wait_until(lambda: holder() not in (None, leader), timeout=30)
        took_s = time.monotonic() - killed_at
        assert successor and holder() != leader
        # The lease runs out at most LEASE_S after the last renewal; the stand-by asks
        # every INTERVAL_S.
        assert took_s <= LEASE_S + INTERVAL_S + 0.5, f"took {took_s:.1f} s"
    finally:
        for process in monitors.values():
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        db.dispose()
