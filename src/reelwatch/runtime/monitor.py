"""The monitor role: ``monitor.service.Monitor`` until SIGTERM or SIGINT, with a
notification dispatcher beside it, which delivers the monitor's alerts when no worker is
alive, and standing as a candidate for the engine's maintenance (``engine.maintenance``),
so the maintenance runs while any worker or monitor is alive."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.engine.maintenance import Maintainer, maintenance_lease_s
from reelwatch.monitor.service import Monitor
from reelwatch.notify.dispatcher import dispatching
from reelwatch.operations.prune import maintenance_duties


def run_monitor(settings: Settings, *, name: str | None = None) -> None:
    db = Database(settings.resolved_database_url, pool_size=3)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    monitor = Monitor(db, settings, name=name)
    maintainer = Maintainer(
        db,
        maintenance_duties(db, settings),
        name=monitor.name,
        ttl_s=maintenance_lease_s(settings.lease_seconds),
    )
    maintaining = threading.Thread(target=maintainer.run, args=(stop,), name="maintainer")
    maintaining.start()
    try:
        with dispatching(db, settings, owner=f"{monitor.name}:dispatcher"):
            monitor.run(stop)
    finally:
        stop.set()
        maintaining.join(timeout=30)
        db.dispose()
