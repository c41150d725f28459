"""The monitor: runs the checks and evaluates the alert rules on the elected node.

Any number of ``reelwatch monitor`` processes may run; each round, one holds the
``monitor`` lease (``engine.leadership``) and does the singleton duties, the others stand by
and take over within one lease when it dies. A round runs the component checks that are
due (outside any transaction: some take seconds), then records them with the worker and
node checks, the ping, the database's timeline (``failover``: a promoted standby is
alerted once) and a load sample in one transaction, and evaluates the rules on the
result; then it opens or resolves the automatic incidents and, once the service is
operational, mails the "tell me when it is back" subscribers. The end-to-end probe runs
in its own thread, every
``REELWATCH_PROBE_INTERVAL_SECONDS``, because it takes as long as a real upload does.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import WorkerRecord
from reelwatch.engine.leadership import hold_lease, release_lease
from reelwatch.insights import checks as records
from reelwatch.insights.history import record_sample
from reelwatch.insights.load import read_load
from reelwatch.insights.queue_wait import record_queue_wait
from reelwatch.monitor import checks, failover
from reelwatch.monitor.functional import ping_ffmpeg
from reelwatch.monitor.outage import DatabaseOutage
from reelwatch.monitor.probe import EndToEndProbe
from reelwatch.monitor.resources import node_resources
from reelwatch.monitor.rules import evaluate_rules
from reelwatch.notices.service import sync_auto_incidents
from reelwatch.notices.status import OPERATIONAL, read_status, tell_subscribers_it_is_back
from reelwatch.storage import open_store
from reelwatch.videos.pipeline import build_ping_workflow

log = logging.getLogger(__name__)

# A worker silent this long is forgotten, with its check (and its alert resolves).
WORKER_FORGOTTEN_AFTER = timedelta(days=1)
FIRST_PROBE_AFTER_S = 60.0


class Monitor:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        name: str | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:monitor"
        self.interval_s = interval_s or settings.monitor_interval_seconds
        self.lease_s = 3 * self.interval_s
        self.leading = False
        store = open_store(settings)
        self.components = checks.ComponentChecks(db, settings, store)
        self.ping = build_ping_workflow(settings, store)
        self.probe = EndToEndProbe(db, settings)
        self._probe_thread: threading.Thread | None = None
        # The first probe waits a minute, for the workers a fresh `up` is starting.
        self._next_probe = time.monotonic() + min(
            FIRST_PROBE_AFTER_S, self.settings.probe_interval_seconds
        )
        self._stop = threading.Event()
        self.outage = DatabaseOutage(self.name, settings)

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        try:
            while not stop.is_set():
                try:
                    self.run_round()
                    self.outage.recovered()
                except DBAPIError as exc:  # the database is away: say so, try again
                    log.error("monitor round failed: the database is unreachable (%s)", exc.orig)
                    self.outage.failed(str(exc.orig))
                except Exception:
                    log.exception("monitor round failed")
                stop.wait(self.interval_s)
        finally:
            if self._probe_thread:
                self._probe_thread.join(timeout=30)
            if self.leading:
                release_lease(self.db, records.MONITOR_LEASE, self.name)

    def run_round(self) -> list[str]:
        """One round; returns the firing rules (empty when not the leader)."""
        leading = hold_lease(self.db, records.MONITOR_LEASE, self.name, ttl_s=self.lease_s)
        if leading != self.leading:
            log.warning("monitor %s %s", self.name, "leads" if leading else "stands by")
            self.leading = leading
        if not leading:
            return []
        results = self.components.run_due()
        own_node = node_resources(self.settings.media_root, self.settings.home)
        self._start_probe_if_due()
        with self.db.write() as session:
            now = utcnow()
            _forget_silent_workers(session, now)
            load = read_load(session, lease_s=self.settings.lease_seconds)
            results |= checks.worker_checks(load) | checks.node_checks(load, own_node)
            if not self.db.is_sqlite:
                timeline = failover.check_timeline(session, now, self.settings.env)
                results[failover.TIMELINE_CHECK] = timeline
            ping = self._ping(session, now)
            if ping:
                results["ping_ffmpeg"] = ping
            for name, result in results.items():
                records.record_check(session, name, result, now)
            records.forget_checks(session, lambda name: _kept(name, results))
            records.prune_history(session, now)
            record_sample(session, load, now)
            firing = evaluate_rules(session, load, now, self.settings.env)
            self._tell_users(session, firing, now)
            return firing

    def _ping(self, session: Session, now: datetime) -> records.CheckResult | None:
        if not self.settings.ping_interval_seconds:
            return None
        return ping_ffmpeg(
            session,
            self.ping,
            now,
            interval_s=self.settings.ping_interval_seconds,
            timeout_s=max(60.0, 2 * self.settings.lease_seconds),
        )

    def _tell_users(self, session: Session, firing: list[str], now: datetime) -> None:
        """Incidents follow the alerts users feel; "it is back" once it is."""
        sync_auto_incidents(session, firing, now)
        status = read_status(session, lease_s=self.settings.lease_seconds, now=now)
        record_queue_wait(session, status.capacity.expected_wait_s, now)  # for admission
        if status.status == OPERATIONAL:
            public_url = self.settings.resolved_public_url
            tell_subscribers_it_is_back(session, public_url=public_url, now=now)

    def _start_probe_if_due(self) -> None:
        every_s = self.settings.probe_interval_seconds
        busy = self._probe_thread is not None and self._probe_thread.is_alive()
        if not every_s or busy or time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + every_s
        self._probe_thread = threading.Thread(
            target=self._probe_once, name="e2e-probe", daemon=True
        )
        self._probe_thread.start()

    def _probe_once(self) -> None:
        try:
            result = self.probe.run(self._stop)
            log.info("end-to-end probe: %s (%s)", result.state, result.detail)
        except Exception:
            log.exception("the end-to-end probe could not record its result")


def _kept(name: str, fresh: dict[str, records.CheckResult]) -> bool:
    """Worker and node checks are rebuilt every round: one not rebuilt is gone."""
    return name in fresh or not name.startswith(("worker:", "node:"))


def _forget_silent_workers(session: Session, now: datetime) -> None:
    cutoff = now - WORKER_FORGOTTEN_AFTER
    session.execute(delete(WorkerRecord).where(WorkerRecord.heartbeat_at < cutoff))
