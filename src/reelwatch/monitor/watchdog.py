"""``reelwatch watchdog URL``: notices from outside when the whole service is down.

Meant for another machine: it polls ``URL/readyz`` and, through Apprise, says once when
the service has failed ``failures_before_down`` checks in a row (down, since when, what
to do) and once when it answers again. It needs nothing of reelwatch's but the URL.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from reelwatch.notify.alerts import send_alert
from reelwatch.notify.smtp import DeliveryError

log = logging.getLogger(__name__)


@dataclass
class Watchdog:
    url: str
    alert_urls: list[str]
    interval_s: float = 15.0
    failures_before_down: int = 3
    timeout_s: float = 5.0
    down_since: datetime | None = None
    failures: int = 0
    last_error: str = ""

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.check_once()
            stop.wait(self.interval_s)

    def check_once(self) -> None:
        problem = self._probe()
        if problem is None:
            if self.down_since is not None:
                self._tell(
                    "RESOLVED reelwatch is up again",
                    f"{self.url} answers again (it was down since {self._since()}).",
                )
            self.down_since, self.failures = None, 0
            return
        self.failures += 1
        self.last_error = problem
        if self.failures == self.failures_before_down:
            self.down_since = datetime.now(UTC)
            self._tell(
                "CRITICAL reelwatch is down",
                f"What: {self.url}/readyz failed {self.failures} checks in a row: "
                f"{problem}.\nSince: {self._since()}.\nWhat to do: restart needed; on "
                "the server run `reelwatch up` (or restart `reelwatch server` and its "
                "database), then `reelwatch doctor`.",
            )

    def _probe(self) -> str | None:
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        return None

    def _since(self) -> str:
        return self.down_since.strftime("%Y-%m-%d %H:%M:%S UTC") if self.down_since else "?"

    def _tell(self, title: str, body: str) -> None:
        log.warning("%s: %s", title, body)
        try:
            send_alert(
                self.alert_urls, title, body, level="critical" if "down" in title else "info"
            )
        except DeliveryError as exc:
            # Nothing to keep it in: the next state change will be told; log this one.
            log.error("could not deliver %r: %s", title, exc)
