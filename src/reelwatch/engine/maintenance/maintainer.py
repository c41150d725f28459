"""The maintainer (River's queue_maintainer): runs the periodic duties on their
intervals while its process holds the ``engine-maintenance`` lease.

Every process that runs the engine (each worker, the monitor) runs one as a candidate,
so no duty depends on one kind of process being alive: exactly one leads at a time, and
when it dies another takes over once the lease ran out. A candidate that does not lead
costs one lease statement every ``ttl_s / 3``. Options: ``ttl_s`` (the lease, default
``MAINTENANCE_LEASE_S``; keep it below the task lease so a dead leader's own task is
rescued on time). Reports what each round of a duty did in the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from reelwatch.database import Database, utcnow
from reelwatch.engine.leadership import hold_lease, release_lease
from reelwatch.engine.maintenance.duty import Duty

log = logging.getLogger(__name__)

MAINTENANCE_LEASE = "engine-maintenance"
MAINTENANCE_LEASE_S = 10.0


class Maintainer:
    def __init__(
        self,
        db: Database,
        duties: Sequence[Duty],
        *,
        name: str,
        ttl_s: float = MAINTENANCE_LEASE_S,
        lease_name: str = MAINTENANCE_LEASE,
    ) -> None:
        self.db = db
        self.duties = tuple(duties)
        self.name = name
        self.ttl_s = ttl_s
        self.lease_name = lease_name
        self.leading = False
        self._next_election = 0.0
        self._next_run: dict[str, float] = {}

    def run(self, stop: threading.Event) -> None:
        """Stand as a candidate (and lead when elected) until ``stop`` is set."""
        try:
            while not stop.is_set():
                stop.wait(self.tick())
        finally:
            if self.leading:
                self._resign()

    def tick(self) -> float:
        """Renew or seek the lease when due, run the duties that are due when leading;
        returns how long to wait before the next tick."""
        now = time.monotonic()
        if now >= self._next_election:
            self._next_election = now + self.ttl_s / 3
            self._elect()
        if self.leading:
            self.run_due(now)
        return max(0.0, self._next_wake() - time.monotonic())

    def run_due(self, now: float) -> dict[str, int]:
        """Run each duty whose interval has passed; what each reported, by name."""
        reports: dict[str, int] = {}
        for duty in self.duties:
            if now >= self._next_run.get(duty.name, 0.0):
                self._next_run[duty.name] = now + duty.interval_s
                reports[duty.name] = self._run_duty(duty)
        return reports

    def _run_duty(self, duty: Duty) -> int:
        try:
            return duty.run(utcnow())
        except Exception:  # one failing duty must not stop the others; it runs again
            log.exception("maintenance duty %s failed", duty.name)
            return 0

    def _elect(self) -> None:
        try:
            leading = hold_lease(self.db, self.lease_name, self.name, ttl_s=self.ttl_s)
        except Exception:  # the database is away: a leader that cannot renew stops
            log.exception("maintainer %s could not reach its lease", self.name)
            leading = False
        if leading != self.leading:
            log.info("maintainer %s %s", self.name, "leads" if leading else "stands by")
            self._next_run.clear()  # a new leader runs every duty at once
        self.leading = leading

    def _next_wake(self) -> float:
        if not self.leading:
            return self._next_election
        return min([self._next_election, *self._next_run.values()])

    def _resign(self) -> None:
        try:
            release_lease(self.db, self.lease_name, self.name)
        except Exception:
            log.exception("maintainer %s could not release its lease", self.name)
        self.leading = False
