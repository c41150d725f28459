"""The database throttle (``reelwatch.throttle``) on SQLite and PostgreSQL: limits, the
window, atomic counting under concurrency, forgiving, and bounded growth."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from reelwatch.database import Database, utcnow
from reelwatch.db.models import ThrottleCounter
from reelwatch.throttle import Limit, forgive, hit

GUESSES = Limit("test-guess", 3, 300)
BY_IP = Limit("test-ip", 5, 300)


def counters(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(ThrottleCounter)) or 0)


def test_a_limit_refuses_until_its_window_ends_and_refusals_count_nowhere(db: Database) -> None:
    now = utcnow()
    attempt = [(BY_IP, "203.0.113.7"), (GUESSES, "ann@example.com")]
    assert [hit(db, attempt, now) for _ in range(3)] == [None, None, None]
    assert hit(db, attempt, now + timedelta(seconds=100)) == 200  # the window's rest
    # Refused, so not counted at the IP: two more accounts still fit in its five.
    assert hit(db, [(BY_IP, "203.0.113.7"), (GUESSES, "bob@example.com")], now) is None
    assert hit(db, [(BY_IP, "203.0.113.7"), (GUESSES, "cy@example.com")], now) is None
    assert hit(db, [(BY_IP, "203.0.113.7"), (GUESSES, "dan@example.com")], now) == 300
    assert hit(db, [(BY_IP, "198.51.100.1")], now) is None  # another IP is not affected
    later = now + timedelta(seconds=300)
    assert hit(db, attempt, later) is None  # a new window
    assert counters(db) == 2  # the ended windows of bob, cy and 198.51.100.1 are gone


def test_concurrent_attempts_never_slip_past_the_limit(db: Database) -> None:
    now = utcnow()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: hit(db, [(GUESSES, "eve@example.com")], now), range(16)))
    assert answers.count(None) == GUESSES.attempts


def test_a_success_resets_the_account_and_refunds_the_ip(db: Database) -> None:
    now = utcnow()
    attempt = [(BY_IP, "203.0.113.9"), (GUESSES, "fay@example.com")]
    for _ in range(3):
        assert hit(db, attempt, now) is None
    forgive(db, reset=attempt[1:], refund=attempt[:1])
    assert [hit(db, attempt, now) for _ in range(3)] == [None, None, None]
    assert hit(db, [(BY_IP, "203.0.113.9")], now) == 300  # 3 - 1 + 3 = 5 used


def test_a_limit_of_zero_is_off(db: Database) -> None:
    off = Limit("test-off", 0, 60)
    assert all(hit(db, [(off, "x")]) is None for _ in range(5))
    assert counters(db) == 0
