"""The outbox's delivery backoff follows REELWATCH_RETRY_BACKOFF_SCALE, as task retries
do (found by the chaos suite: after an SMTP outage, e-mails waited the full backoff)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta

import pytest

from reelwatch.database import Database, utcnow
from reelwatch.db.models import OutboxMessage
from reelwatch.notify import outbox


def failed_once(db: Database, *, backoff_scale: float) -> OutboxMessage:
    """A message whose first delivery failed temporarily, as read back from the table."""
    with db.write() as session:
        message = outbox.Message("email:test", outbox.EMAIL, "a@example.com", "s", "b")
        outbox.enqueue(session, message)
    claimed = outbox.claim_due(db, "dispatcher", lease_s=60)
    outbox.mark_failed(
        db, claimed, "connection refused", permanent=False, backoff_scale=backoff_scale
    )
    with db.read() as session:
        return session.query(OutboxMessage).one()


def test_a_zero_backoff_scale_retries_a_delivery_at_once(db: Database) -> None:
    message = failed_once(db, backoff_scale=0.0)
    assert message.state == outbox.PENDING
    assert message.next_attempt_at <= utcnow()
    assert [m.key for m in outbox.claim_due(db, "dispatcher", lease_s=60)] == ["email:test"]


def test_the_backoff_scale_multiplies_the_delivery_backoff(db: Database) -> None:
    before = utcnow()
    message = failed_once(db, backoff_scale=10.0)
    # The first retry waits between half and all of 5 s, times the scale.
    assert message.next_attempt_at >= before + timedelta(seconds=25)
    assert outbox.claim_due(db, "dispatcher", lease_s=60) == []


def test_retry_delay_scales_and_stays_within_its_jitter() -> None:
    assert outbox.retry_delay(1, 0.0) == 0.0
    delays = [outbox.retry_delay(2, 0.5) for _ in range(100)]
    assert all(2.5 <= delay <= 5.0 for delay in delays)


def test_a_dead_dispatchers_messages_are_due_again_at_once(db: Database) -> None:
    with db.write() as session:
        outbox.enqueue(
            session,
            outbox.Message(
                key="k", channel=outbox.EMAIL, recipient="a@example.com", subject="s", body_text="b"
            ),
        )
    [leased] = outbox.claim_due(db, "dead-worker", lease_s=120)
    assert outbox.claim_due(db, "other", lease_s=120) == [], "leased for two minutes"
    assert outbox.release_leases(db, "dead-worker") == 1
    [again] = outbox.claim_due(db, "other", lease_s=120)
    assert again.id == leased.id and again.attempts == 2
    outbox.mark_sent(db, [leased])  # the dead one's late word is fenced out
    with db.read() as session:
        assert session.get_one(OutboxMessage, again.id).state == outbox.SENDING


def test_an_empty_outbox_is_polled_without_the_write_lock(db: Database) -> None:
    """Every dispatcher polls twice a second; on SQLite a write transaction would queue
    behind (and block) every other writer even when there is nothing to send."""
    if not db.is_sqlite:
        pytest.skip("SQLite's write lock is the database's")
    holder = sqlite3.connect(str(db.url.database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        polled: list[list[OutboxMessage]] = []
        poll = threading.Thread(
            target=lambda: polled.append(outbox.claim_due(db, "dispatcher", lease_s=60))
        )
        poll.start()
        poll.join(timeout=5)  # the busy timeout is 30 s: a write would still be waiting
        assert not poll.is_alive() and polled == [[]]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
