"""The monitor role: ``monitor.service.Monitor`` until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from reelwatch.config import Settings
from reelwatch.db.database import Database
from reelwatch.monitor.service import Monitor


def run_monitor(settings: Settings, *, name: str | None = None) -> None:
    db = Database(settings.resolved_database_url, pool_size=2)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        Monitor(db, settings, name=name).run(stop)
    finally:
        db.dispose()
