"""Grouped alerts: a burst becomes one digest however its members are spread in time."""

from __future__ import annotations

from sqlalchemy import select

from reelwatch.database import Database
from reelwatch.db.models import OutboxMessage
from reelwatch.notify import messages, outbox


def alert(key: str) -> outbox.Message:
    return outbox.Message(
        key=key,
        channel=outbox.ALERT,
        recipient=outbox.ADMINS,
        subject="Video processing failed",
        body_text=key,
        group_key="processing_failures",
    )


def test_a_later_member_joins_the_pending_flush_of_its_group(db: Database) -> None:
    with db.write() as session:
        outbox.enqueue(session, alert("first"))
    with db.write() as session:
        outbox.enqueue(session, alert("second"))
    with db.read() as session:
        due = session.scalars(select(OutboxMessage.next_attempt_at).order_by(OutboxMessage.id))
        first, second = due.all()
    assert second == first, "due together: claimed together, delivered as one digest"


def test_the_digest_counts_failures_by_cause_and_lists_the_services_first() -> None:
    members = [
        ("Video processing failed (input)", "v1: input_invalid"),
        ("Video processing failed (service)", "v2: timeout"),
        ("Video processing failed", "v3: from an older release"),  # no cause named
    ]
    title, body = messages.failure_digest(members, environment="production")
    assert title.endswith("3 videos failed processing: 2 by the service, 1 by their input")
    assert body.splitlines()[:3] == [
        "- v2: timeout",
        "- v3: from an older release",
        "- v1: input_invalid",
    ]
