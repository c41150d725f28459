"""The dispatcher: delivers the outbox's due messages, by e-mail or Apprise.

It runs beside every worker, server and monitor (``dispatching``). Each round leases a
batch of due messages, sends e-mails one by one, and sends each group of alerts as one
digest (no sooner than ``ALERT_GROUP_INTERVAL_S`` after the group's previous digest), so
a burst of a hundred failures is one message. Failed deliveries go back to the outbox
with a backoff; a message that cannot be built or sent at all is parked (``rejected``,
with its reason) and the rest of the round goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import OutboxMessage, User
from reelwatch.inputs import InvalidInput, parse_address, shown
from reelwatch.notify import outbox
from reelwatch.notify.alerts import parse_alert_urls, send_alert
from reelwatch.notify.allowlist import mark_suppressed, suppression_reason
from reelwatch.notify.messages import failure_digest
from reelwatch.notify.smtp import DeliveryError, send_email
from reelwatch.smtp_target import SmtpTarget

log = logging.getLogger(__name__)

LEASE_S = 120.0
RECORD_ATTEMPTS = 8  # about half a minute of database outage
IDLE_WAIT_S = 0.5
ALERT_GROUP_INTERVAL_S = 300.0


@contextmanager
def dispatching(db: Database, settings: Settings, *, owner: str) -> Iterator[Dispatcher]:
    """A dispatcher thread beside a role (worker, server or monitor) while the block
    runs, so the outbox is delivered as long as any role is alive: the alert that no
    worker is alive is sent by the others."""
    stop = threading.Event()
    dispatcher = Dispatcher(db, settings, owner=owner)
    # A daemon: a send stuck past the join cannot keep the role from exiting (its
    # lease hands the message to another dispatcher).
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="dispatcher", daemon=True)
    thread.start()
    try:
        yield dispatcher
    finally:
        stop.set()
        thread.join(timeout=30)


class Dispatcher:
    def __init__(
        self, db: Database, settings: Settings, *, owner: str, lease_s: float = LEASE_S
    ) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner
        self.lease_s = lease_s
        self.backoff_scale = settings.retry_backoff_scale
        self.environment = settings.env
        self.mail_from = settings.mail_from
        self.smtp = SmtpTarget.from_url(settings.smtp_url) if settings.smtp_url else None
        self.alert_urls = parse_alert_urls(settings.alert_urls)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                delivered = self.dispatch_due()
            except Exception:  # the database may be away; the outbox keeps everything
                log.exception("dispatcher round failed")
                delivered = 0
            if not delivered:
                stop.wait(IDLE_WAIT_S)

    def dispatch_due(self) -> int:
        """One round; returns how many deliveries succeeded (0: wait before the next)."""
        claimed = outbox.claim_due(self.db, self.owner, lease_s=self.lease_s)
        groups: dict[str, list[OutboxMessage]] = defaultdict(list)
        delivered = 0
        for message in claimed:
            if message.channel == outbox.ALERT and message.group_key:
                groups[message.group_key].append(message)
            else:
                delivered += self._deliver(
                    [message], message.subject, message.body_text, message.body_html
                )
        for group_key, members in groups.items():
            delivered += self._deliver_group(group_key, members)
        return delivered

    def _deliver_group(self, group_key: str, members: list[OutboxMessage]) -> bool:
        previous = outbox.last_sent_at(self.db, group_key)
        not_before = previous + timedelta(seconds=ALERT_GROUP_INTERVAL_S) if previous else None
        if not_before and not_before > utcnow():
            outbox.postpone(self.db, members, not_before)
            return False
        digest = [(m.subject, m.body_text) for m in members]
        title, body = failure_digest(digest, environment=self.environment)
        return self._deliver(members, title, body, None)

    def _deliver(
        self, messages: list[OutboxMessage], subject: str, text: str, html: str | None
    ) -> bool:
        first = messages[0]
        if first.channel != outbox.ALERT and self._suppressed(first):
            return False
        try:
            if first.channel == outbox.ALERT:
                self._send_alert(first, subject, text)
            else:
                self._send_email(first.recipient, first.key, subject, text, html)
        except DeliveryError as exc:
            log.warning(
                "delivery of %s failed (%s): %s",
                first.key,
                "permanent" if exc.permanent else "will retry",
                exc,
            )
            self._record_failure(messages, str(exc), permanent=exc.permanent)
            return False
        except DBAPIError:
            raise  # the database is away: the round stops, the leases keep the messages
        except Exception as exc:  # whatever it is, this message is at fault
            # It cannot be built or sent (a CR/LF in a header, say) and never will be:
            # parked, with its reason, so it never holds up the others.
            log.error("message %s cannot be built or sent; parked: %r", first.key, exc)
            self._record_failure(messages, f"cannot be built or sent: {exc!r}", permanent=True)
            return False
        _record_outcome(lambda: outbox.mark_sent(self.db, messages))
        return True

    def _suppressed(self, message: OutboxMessage) -> bool:
        """A user e-mail held back by REELWATCH_MAIL_ALLOWLIST (staging and beta)."""
        reason = suppression_reason(self.settings, message.recipient, self._admin_emails)
        if reason is None:
            return False
        log.info("message %s not sent: %s", message.key, reason)
        _record_outcome(lambda: mark_suppressed(self.db, message, reason))
        return True

    def _record_failure(
        self, messages: list[OutboxMessage], error: str, *, permanent: bool
    ) -> None:
        _record_outcome(
            lambda: outbox.mark_failed(
                self.db, messages, error, permanent=permanent, backoff_scale=self.backoff_scale
            )
        )

    def _send_alert(self, message: OutboxMessage, subject: str, text: str) -> None:
        if self.alert_urls:
            send_alert(self.alert_urls, subject, text)
            return
        admins = [admin for admin in self._admin_emails() if _addressable(admin)]
        if not admins:
            raise DeliveryError(
                "no REELWATCH_ALERT_URLS and no admin user to mail", permanent=False
            )
        for admin in admins:  # one Message-ID per admin, so each is deduplicated alone
            self._send_email(admin, f"{message.key}:{admin}", subject, text, None)

    def _send_email(self, to: str, key: str, subject: str, text: str, html: str | None) -> None:
        if self.smtp is None:
            raise DeliveryError("REELWATCH_SMTP_URL is not set", permanent=False)
        send_email(self.smtp, self.compose(to, key, subject, text, html))

    def compose(self, to: str, key: str, subject: str, text: str, html: str | None) -> EmailMessage:
        """The e-mail as it is sent; raises (and the message is parked) when it cannot be
        built: a recipient that is not one address, a line break in the subject…"""
        email = EmailMessage()
        email["From"] = self.mail_from
        email["To"] = parse_address(to)  # never a list: one stored address, one recipient
        email["Subject"] = subject
        email["Date"] = formatdate(usegmt=True)
        # Derived from the idempotency key: a re-send after a crash is the same message.
        email["Message-ID"] = f"<{_safe(key)}@reelwatch>"
        email.set_content(text)
        if html:
            email.add_alternative(html, subtype="html")
        return email

    def _admin_emails(self) -> list[str]:
        with self.db.read() as session:
            return list(session.scalars(select(User.email).where(User.is_admin.is_(True))))


def _record_outcome(record: Callable[[], None]) -> None:
    """Record a delivery's outcome, waiting out a database outage: given up on, the
    message would stay leased for LEASE_S (and, if it went out, be sent again then)."""
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            record()
            return
        except DBAPIError as exc:
            if attempt == RECORD_ATTEMPTS:
                raise
            log.warning("cannot record a delivery yet (%s); retrying", exc.orig)
            time.sleep(min(8.0, 0.25 * 2**attempt))


def _addressable(email: str) -> bool:
    """One admin row with a bad address (stored before addresses were checked) must not
    keep the alert from the other admins."""
    try:
        parse_address(email)
        return True
    except InvalidInput:
        log.warning("admin address %s is not one e-mail address; not mailing it", shown(email))
        return False


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "." for c in key)
