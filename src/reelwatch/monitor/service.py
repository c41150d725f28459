"""The monitor: evaluates alert rules and rescues expired leases, on the elected node.

Any number of ``reelwatch monitor`` processes may run; each round, one holds the
``monitor`` lease (``leadership``) and does the singleton duties, the others stand by
and take over within one lease when it dies. Options: ``interval_s`` between rounds
(5 s) and ``lease_s``, the leadership lease (3 rounds).
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from reelwatch.config import Settings
from reelwatch.db.database import Database, utcnow
from reelwatch.engine.queue import expire_stale_leases
from reelwatch.monitor.history import record_sample
from reelwatch.monitor.leadership import hold_lease, release_lease
from reelwatch.monitor.load import read_load
from reelwatch.monitor.rules import evaluate_rules

log = logging.getLogger(__name__)

LEASE_NAME = "monitor"


class Monitor:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        name: str | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.db = db
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:monitor"
        self.interval_s = interval_s
        self.lease_s = 3 * interval_s
        self.leading = False

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.run_round()
                except Exception:  # the database may be away: stand by, try again
                    log.exception("monitor round failed")
                stop.wait(self.interval_s)
        finally:
            if self.leading:
                release_lease(self.db, LEASE_NAME, self.name)

    def run_round(self) -> list[str]:
        """One round; returns the firing rules (empty when not the leader)."""
        leading = hold_lease(self.db, LEASE_NAME, self.name, ttl_s=self.lease_s)
        if leading != self.leading:
            log.warning("monitor %s %s", self.name, "leads" if leading else "stands by")
            self.leading = leading
        if not leading:
            return []
        expire_stale_leases(self.db, backoff_scale=self.settings.retry_backoff_scale)
        with self.db.write() as session:
            load = read_load(session, lease_s=self.settings.lease_seconds)
            now = utcnow()
            record_sample(session, load, now)
            return evaluate_rules(session, load, now, self.settings.env)
