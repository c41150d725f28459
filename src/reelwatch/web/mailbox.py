"""The mailbox page's view of the built-in mail sink: each user sees the mail addressed
to them; admins see everything the sink received."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from reelwatch.db.models import User
from reelwatch.notify.sink import StoredMail, list_mail, read_mail


@dataclass(frozen=True)
class OpenedMail:
    stored: StoredMail
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None


SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")


def visible_mail(folder: Path, user: User) -> list[StoredMail]:
    """Newest first."""
    mails = [mail for mail in list_mail(folder) if may_read(user, mail)]
    return mails[::-1]


def may_read(user: User, mail: StoredMail) -> bool:
    return user.is_admin or user.email.lower() in (r.lower() for r in mail.recipients)


def open_mail(folder: Path, user: User, mail_id: str) -> OpenedMail | None:
    """The message ``mail_id`` if this user may read it; None otherwise, or if unknown."""
    stored = next((mail for mail in list_mail(folder) if mail.id == mail_id), None)
    if stored is None or not may_read(user, stored):
        return None
    try:
        message = read_mail(folder, mail_id)
    except KeyError:
        return None
    return OpenedMail(
        stored,
        [(name, str(message[name])) for name in SHOWN_HEADERS if name in message],
        _body(message, "plain"),
        _body(message, "html"),
    )


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    return str(part.get_content())
