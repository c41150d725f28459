"""Times as people write and read them: ``30m``, ``+2h``, ``now``, ISO 8601, "about 2 hours".

Moments are naive UTC, like every timestamp in the database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_span(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1.5d``; ValueError for anything else."""
    match = _SPAN.match(text.lower())
    if not match:
        raise ValueError(f"{text!r}: give a number and a unit, such as 30m, 2h or 1d")
    return timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])


def parse_moment(text: str, now: datetime) -> datetime:
    """``now``, ``+2h`` (from ``now``), or ISO 8601 (UTC unless it names an offset)."""
    text = text.strip()
    if text.lower() == "now":
        return now
    if text.startswith("+"):
        return now + parse_span(text[1:])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r}: give ISO 8601 (2026-12-01T22:00, UTC unless an offset is given), "
            "'now' or '+2h'"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def span_in_words(seconds: float) -> str:
    """A rounded span for a message: "about 40 minutes", "about 2 hours"."""
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    if hours < 48:
        return f"about {hours} hours"
    return f"about {round(hours / 24)} days"
