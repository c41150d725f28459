"""Staging and beta may mail users only on an allow-list (``REELWATCH_MAIL_ALLOWLIST``):
a user e-mail to anyone else is not sent but kept in the outbox as ``suppressed``, with
the reason in ``last_error``. Admins and the probe user are always allowed, and alerts
are never held."""

from __future__ import annotations

from collections.abc import Callable

from reelwatch.config import Settings
from reelwatch.database import Database, retry_on_conflict
from reelwatch.db.models import OutboxMessage
from reelwatch.notify.outbox import SUPPRESSED, _fenced


def suppression_reason(
    settings: Settings, recipient: str, admins: Callable[[], list[str]]
) -> str | None:
    """Why a user e-mail to ``recipient`` must not be sent; None: it may be. ``admins``
    is asked only when there is a list to check."""
    entries = settings.mail_allowlist_entries
    if entries is None:
        return None
    address = recipient.strip().lower()
    domain = "@" + address.rpartition("@")[2]
    # The end-to-end probe waits for its e-mail to be sent (monitor/probe.py).
    if address in entries or domain in entries or address == settings.probe_email.lower():
        return None
    if address in {admin.lower() for admin in admins()}:
        return None
    listed = "REELWATCH_MAIL_ALLOWLIST" if entries else "the admins (no REELWATCH_MAIL_ALLOWLIST)"
    return f"suppressed in {settings.env}: the recipient is not on {listed}"


@retry_on_conflict
def mark_suppressed(db: Database, message: OutboxMessage, reason: str) -> None:
    with db.write() as session:
        session.execute(
            _fenced(message).values(state=SUPPRESSED, last_error=reason, lease_expires_at=None)
        )
