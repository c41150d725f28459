"""Daily uptime from the checks' history."""

from __future__ import annotations

from datetime import datetime, timedelta

from reelwatch.database import Database
from reelwatch.insights.checks import CRITICAL, OK, CheckResult, record_check
from reelwatch.insights.uptime import daily_uptime, overall


def test_a_six_hour_outage_is_a_quarter_of_its_day(db: Database) -> None:
    now = datetime(2026, 11, 29, 12, 0)
    first_day = datetime(2026, 11, 26)
    changes = [
        (first_day + timedelta(hours=6), OK),  # first seen: the day before is unwatched
        (datetime(2026, 11, 27, 18, 0), CRITICAL),  # down across midnight
        (datetime(2026, 11, 28, 6, 0), OK),
        (datetime(2026, 11, 29, 9, 0), CRITICAL),  # down now
    ]
    with db.write() as session:
        for at, state in changes:
            record_check(session, "storage", CheckResult(state, "x"), at)
    with db.read() as session:
        days = daily_uptime(session, "storage", days=5, now=now)
    assert [d.day.day for d in days] == [25, 26, 27, 28, 29]
    assert days[0].ratio is None, "not watched yet"
    assert days[1].ratio == 1.0, "up from first seen (06:00) to midnight"
    assert days[2].ratio == 0.75 and days[3].ratio == 0.75
    assert days[4].ratio == 0.75, "today: down 09:00 to 12:00 out of 12 h"
    assert overall(days) == (1.0 + 0.75 * 3) / 4
