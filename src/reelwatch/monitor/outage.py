"""Alerting while the database itself is unreachable, when the outbox cannot help."""

from __future__ import annotations

import logging
from datetime import datetime

from reelwatch.config import Settings
from reelwatch.database import utcnow
from reelwatch.notify.alerts import parse_alert_urls, send_alert
from reelwatch.notify.smtp import DeliveryError

log = logging.getLogger(__name__)


class DatabaseOutage:
    """Alerts straight through Apprise when the database is unreachable (the outbox lives
    in it), once after ``REELWATCH_DATABASE_OUTAGE_ALERT_SECONDS``, and once more when
    it answers again. Every monitor does this on its own: with the database away, none
    can be elected."""

    def __init__(self, monitor: str, settings: Settings) -> None:
        self.monitor = monitor
        self.settings = settings
        self.alert_after_s = settings.database_outage_alert_seconds
        self.since: datetime | None = None
        self.alerted = False

    def failed(self, error: str) -> None:
        now = utcnow()
        self.since = self.since or now
        if not self.alerted and (now - self.since).total_seconds() >= self.alert_after_s:
            self.alerted = self._tell(
                "CRITICAL database unreachable",
                f"What: {error}.\nSince: {self.since:%Y-%m-%d %H:%M:%S} UTC (seen by "
                f"{self.monitor}).\nWhat to do: start the database server or fix the network "
                "to it; every role reconnects by itself, and nothing accepted is lost.",
                "critical",
            )

    def recovered(self) -> None:
        if self.alerted and self.since is not None:
            self._tell(
                "RESOLVED database unreachable",
                f"The database answers again (it was unreachable since {self.since:%H:%M:%S} UTC).",
                "info",
            )
        self.since, self.alerted = None, False

    def _tell(self, title: str, body: str, level: str) -> bool:
        urls = parse_alert_urls(self.settings.alert_urls)
        if not urls:
            log.error("%s: %s (no REELWATCH_ALERT_URLS to tell)", title, body)
            return True
        try:
            send_alert(urls, f"[reelwatch {self.settings.env}] {title}", body, level=level)
        except DeliveryError as exc:
            log.error("could not alert that the database is unreachable: %s", exc)
            return False
        return True
