"""Admin alerts through Apprise (``REELWATCH_ALERT_URLS``): json://, mailto://, slack://…"""

from __future__ import annotations

import apprise

from reelwatch.notify.smtp import DeliveryError

_LEVELS = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
}


def parse_alert_urls(value: str) -> list[str]:
    return [url for url in value.split() if url]


def send_alert(urls: list[str], title: str, body: str, *, level: str = "warning") -> None:
    """Deliver to every target; raise a temporary ``DeliveryError`` if any refused."""
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            raise DeliveryError(
                f"not a valid Apprise URL: {url.split('://')[0]}://…", permanent=True
            )
    if not notifier.notify(title=title, body=body, notify_type=_LEVELS[level]):
        raise DeliveryError("an alert target did not accept the alert", permanent=False)
