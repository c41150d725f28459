"""The notification outbox: messages written with the state change that causes them.

``enqueue`` runs inside the caller's transaction and is idempotent by key. Dispatchers
lease due messages (``claim_due``), deliver them, and record the outcome fenced by
(owner, attempt), so any number of dispatchers may run. The leasing is the engine's
(``engine.leasing``), the one the task queue uses; what is the outbox's own is above and
below it: the idempotency key, the alert groups, the backoff, parking and postponing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from reelwatch.database import Database, retry_on_conflict, utcnow
from reelwatch.db.models import OutboxMessage
from reelwatch.engine.leasing import LeasedRows
from reelwatch.inputs import one_line

PENDING, SENDING, SENT, REJECTED = "pending", "sending", "sent", "rejected"
# Held by the staging allow-list (notify/allowlist.py): never claimed again, not
# "parked" (no alert about it), pruned like sent messages.
SUPPRESSED = "suppressed"
EMAIL, ALERT = "email", "alert"
ADMINS = "admins"  # the recipient of alerts: REELWATCH_ALERT_URLS, or every admin's mail
MAX_BACKOFF_S = 900.0
# Alerts wait this long before their first delivery, so a burst becomes one digest.
ALERT_GROUP_WAIT_S = 10.0
MAX_SUBJECT_LENGTH = 500  # the column's size

# The engine's leasing, on the outbox's columns: a message waits ``pending`` until
# ``next_attempt_at``, and is ``sending`` while leased to one dispatcher.
LEASES = LeasedRows(
    OutboxMessage,
    waiting=PENDING,
    leased=SENDING,
    owner="owner",
    attempt="attempts",
    due_at="next_attempt_at",
)
# A dispatcher's claim also takes over messages whose dispatcher died (no rescuer runs
# for the outbox: a message is re-sent as it was, its attempt counted).
_ANY_DUE = LEASES.any_due(or_expired=True)
_CLAIM = LEASES.claim(or_expired=True).execution_options(synchronize_session=False)


@dataclass(frozen=True)
class Message:
    key: str
    channel: str
    recipient: str
    subject: str
    body_text: str
    body_html: str | None = None
    group_key: str | None = None
    video_id: str | None = None


def enqueue(session: Session, message: Message) -> bool:
    """Add ``message`` unless one with its key exists; True when it was added."""
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == message.key)):
        return False
    now = utcnow()
    delay_s = ALERT_GROUP_WAIT_S if message.group_key else 0.0
    # A grouped alert joins its group's pending flush, so a burst goes out as one digest
    # (Alertmanager's group_wait), however its members are spread in time.
    flush_at = _pending_flush(session, message.group_key) if message.group_key else None
    session.add(
        OutboxMessage(
            key=message.key,
            channel=message.channel,
            recipient=message.recipient,
            subject=subject_line(message.subject),
            body_text=message.body_text,
            body_html=message.body_html,
            group_key=message.group_key,
            video_id=message.video_id,
            state=PENDING,
            attempts=0,
            next_attempt_at=flush_at or now + timedelta(seconds=delay_s),
            created_at=now,
        )
    )
    return True


def subject_line(subject: str) -> str:
    """One line within the column, whatever a title held: a line break in a Subject
    makes the e-mail impossible to build."""
    return one_line(subject)[:MAX_SUBJECT_LENGTH]


@retry_on_conflict
def claim_due(db: Database, owner: str, *, lease_s: float, limit: int = 50) -> list[OutboxMessage]:
    """Lease due messages, and messages whose dispatcher died mid-send."""
    now = utcnow()
    with db.read() as session:
        if not session.scalar(_ANY_DUE, {"now": now}):
            return []  # every dispatcher asks twice a second: spare the write lock
    expires = now + timedelta(seconds=lease_s)
    lease = {"now": now, "owner": owner, "lease_expires_at": expires, "limit": limit}
    with db.write() as session:
        return list(session.scalars(_CLAIM, lease))


def _pending_flush(session: Session, group_key: str) -> datetime | None:
    return session.scalar(
        select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.group_key == group_key, OutboxMessage.state == PENDING
        )
    )


@retry_on_conflict
def release_leases(db: Database, owner: str) -> int:
    """Make the messages a dead dispatcher was sending due again now, instead of after
    their lease (its supervisor saw it die). As with an expired lease, one it had handed
    to the SMTP server just before dying is sent again: at least once, never lost."""
    with db.write() as session:
        released = session.execute(LEASES.release(owner), {"now": utcnow()})
        return int(released.rowcount)  # type: ignore[attr-defined]


@retry_on_conflict
def mark_sent(db: Database, messages: list[OutboxMessage]) -> None:
    with db.write() as session:
        for message in messages:
            session.execute(
                _fenced(message).values(
                    state=SENT, sent_at=utcnow(), lease_expires_at=None, last_error=None
                )
            )


@retry_on_conflict
def mark_failed(
    db: Database,
    messages: list[OutboxMessage],
    error: str,
    *,
    permanent: bool,
    backoff_scale: float = 1.0,
) -> None:
    """A temporary failure is retried with capped exponential backoff, for ever: a
    message is never dropped. A permanent rejection is kept, visible, as ``rejected``."""
    with db.write() as session:
        for message in messages:
            values: dict[str, object] = {"last_error": error[:2000], "lease_expires_at": None}
            if permanent:
                values["state"] = REJECTED
            else:
                values["state"] = PENDING
                values["next_attempt_at"] = utcnow() + timedelta(
                    seconds=retry_delay(message.attempts, backoff_scale)
                )
            session.execute(_fenced(message).values(**values))


@retry_on_conflict
def postpone(db: Database, messages: list[OutboxMessage], until: datetime) -> None:
    """Hand messages back without spending an attempt (an alert digest not due yet)."""
    with db.write() as session:
        for message in messages:
            session.execute(
                _fenced(message).values(
                    state=PENDING,
                    next_attempt_at=until,
                    lease_expires_at=None,
                    attempts=OutboxMessage.attempts - 1,
                )
            )


def retry_delay(attempts: int, scale: float = 1.0) -> float:
    """Seconds before the next delivery attempt; ``scale`` is REELWATCH_RETRY_BACKOFF_SCALE,
    which shortens the waits of deliveries as it does those of tasks."""
    delay = min(MAX_BACKOFF_S, 5.0 * 2.0 ** max(0, attempts - 1)) * scale
    return float(delay / 2 + random.uniform(0, delay / 2))


def undelivered(session: Session, *, parked_only: bool, limit: int) -> list[OutboxMessage]:
    """The newest messages not sent: waiting or being sent, parked (``rejected``: they
    can never be delivered) and held by the allow-list (``suppressed``); ``last_error``
    says why."""
    states = [REJECTED] if parked_only else [PENDING, SENDING, REJECTED, SUPPRESSED]
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.state.in_(states))
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def last_sent_at(db: Database, group_key: str) -> datetime | None:
    with db.read() as session:
        return session.scalar(
            select(OutboxMessage.sent_at)
            .where(OutboxMessage.group_key == group_key, OutboxMessage.state == SENT)
            .order_by(OutboxMessage.sent_at.desc())
            .limit(1)
        )


def _fenced(message: OutboxMessage) -> Update:
    """Changes nothing once the dispatcher that leased ``message`` lost it."""
    return LEASES.fenced_update(message.id, message.owner, message.attempts)
