"""Users and their API tokens. Tokens are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.database import Database, utcnow
from reelwatch.db.models import User

TOKEN_PREFIX = "rw_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_ADMIN_EMAIL = "admin@localhost"


class UserExists(Exception):
    pass


@dataclass(frozen=True)
class NewUser:
    id: int
    email: str
    is_admin: bool
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, email: str, *, is_admin: bool = False) -> NewUser:
    email = email.strip().lower()
    if "@" not in email:
        raise ValueError(f"not an email address: {email!r}")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserExists(f"a user with email {email} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(email=email, is_admin=is_admin, token_hash=hash_token(token), created_at=utcnow())
    session.add(user)
    session.flush()
    return NewUser(user.id, email, is_admin, token)


def user_for_token(session: Session, token: str) -> User | None:
    return session.scalar(select(User).where(User.token_hash == hash_token(token)))


def ensure_admin(db: Database, token_file: Path) -> NewUser | None:
    """Create the first admin when there is none; its token goes to ``token_file``
    (mode 0600). Returns the new admin, or None when one already existed."""
    with db.write() as session:
        if session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None:
            return None
        admin = create_user(session, DEFAULT_ADMIN_EMAIL, is_admin=True)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(admin.token + "\n")
    token_file.chmod(0o600)
    return admin


def rotate_token(session: Session, email: str) -> str:
    """A new token for ``email`` (the user is created if needed); the old one stops working.

    The monitor's end-to-end probe signs in this way each run, so no long-lived probe
    secret is stored anywhere."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        return create_user(session, email).token
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.token_hash = hash_token(token)
    return token
