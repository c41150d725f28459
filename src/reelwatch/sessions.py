"""Server-side web sessions: one ``web_sessions`` row per signed-in browser.

The browser's cookie carries a random 256-bit token; the row is keyed by its SHA-256.
A session is live while its row exists, is not revoked and has not expired (14 days
after sign-in). Signing out revokes the row; a new password or API token revokes all
of the user's rows. Expired rows, and rows revoked over a day ago, are deleted at each
sign-in and by ``reelwatch gc``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from reelwatch.db.models import User, WebSession

SESSION_LIFETIME = timedelta(days=14)
# last_seen_at is written at most this often: one small write per active browser a minute.
TOUCH_EVERY = timedelta(minutes=1)
KEEP_REVOKED = timedelta(days=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, user_id: int, now: datetime) -> str:
    """A new session for ``user_id``; returns the token for the cookie (kept nowhere else)."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=_digest(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    return token


def live_session(session: Session, token: str, now: datetime) -> tuple[WebSession, User] | None:
    """The session of ``token`` and its user, unless revoked or expired."""
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(
            WebSession.id == _digest(token),
            WebSession.revoked_at.is_(None),
            WebSession.expires_at > now,
        )
    ).first()
    return None if row is None else (row[0], row[1])


def touch(session: Session, session_id: str, now: datetime) -> None:
    session.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now))


def revoke(session: Session, token: str, now: datetime) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.id == _digest(token), WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all(session: Session, user_id: int, now: datetime) -> None:
    """End every session of ``user_id`` (their credentials changed)."""
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def purge_expired(session: Session, now: datetime) -> int:
    """Delete the sessions that expired, or were revoked over ``KEEP_REVOKED`` ago."""
    result = session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at <= now, WebSession.revoked_at <= now - KEEP_REVOKED)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
