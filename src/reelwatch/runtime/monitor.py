"""The monitor role: ``monitor.service.Monitor``, and a notification dispatcher beside
it, until SIGTERM or SIGINT. The dispatcher is what delivers the monitor's alerts when
no worker (whose dispatchers deliver the rest) is alive."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from reelwatch.config import Settings
from reelwatch.db.database import Database
from reelwatch.monitor.service import Monitor
from reelwatch.notify.dispatcher import dispatching


def run_monitor(settings: Settings, *, name: str | None = None) -> None:
    db = Database(settings.resolved_database_url, pool_size=3)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    monitor = Monitor(db, settings, name=name)
    try:
        with dispatching(db, settings, owner=f"{monitor.name}:dispatcher"):
            monitor.run(stop)
    finally:
        db.dispose()
