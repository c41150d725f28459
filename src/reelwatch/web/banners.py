"""The banner area at the top of every page: maintenance windows and incidents, active
and upcoming, so users read them before they upload; and simulation mode, so nobody
mistakes a simulated rendition for a real one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from reelwatch.config import Settings
from reelwatch.database import utcnow
from reelwatch.db.models import Notice
from reelwatch.notices.service import MAINTENANCE, active_notices, upcoming_notices
from reelwatch.notices.status import EMERGENCIES


@dataclass(frozen=True)
class Banner:
    level: Literal["info", "warning", "critical"]
    text: str


SIMULATION_BANNER = (
    "Simulation mode: videos are not really transcoded (renditions are copies of the "
    "original) and failures may be injected on purpose."
)


def page_banners(session: Session, settings: Settings) -> list[Banner]:
    now = utcnow()
    active = [_active(notice) for notice in active_notices(session, now)]
    upcoming = [
        Banner("info", f"Planned maintenance {_span(notice)}: {notice.message}")
        for notice in upcoming_notices(session, now)
    ]
    simulated = [Banner("info", SIMULATION_BANNER)] if settings.simulate else []
    return simulated + active + upcoming


def _active(notice: Notice) -> Banner:
    if notice.kind == MAINTENANCE:
        return Banner("warning", f"Maintenance now, {_span(notice)}: {notice.message}")
    # An emergency opened by the monitor (processing stopped) is the gravest news.
    level: Literal["warning", "critical"] = (
        "critical" if notice.source in EMERGENCIES else "warning"
    )
    return Banner(level, notice.message)


def _span(notice: Notice) -> str:
    start = f"{notice.starts_at:%Y-%m-%d %H:%M}"
    return f"{start} to {notice.ends_at:%H:%M} UTC" if notice.ends_at else f"since {start} UTC"
