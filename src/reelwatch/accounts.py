"""Users, their API tokens and passwords. Tokens are shown once and stored only as SHA-256
hashes; passwords (optional, for the web sign-in) only as scrypt hashes. A new token or
password ends every web session of the user."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.database import Database, utcnow
from reelwatch.db.models import User
from reelwatch.inputs import parse_address
from reelwatch.sessions import revoke_all

TOKEN_PREFIX = "rw_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_ADMIN_EMAIL = "admin@localhost"
MIN_PASSWORD_LENGTH = 8
# scrypt cost: 16 MiB and about 50 ms per guess; stored with each hash, so it can grow.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


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
    email = parse_address(email)
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
    revoke_all(session, user.id, utcnow())
    return token


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex), salted per password."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return secrets.compare_digest(computed, bytes.fromhex(digest))


def set_password(session: Session, email: str, password: str) -> None:
    """Give the user with ``email`` a password (replacing any earlier one); their web
    sessions end."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise LookupError(f"no user with email {email}")
    user.password_hash = hash_password(password)
    revoke_all(session, user.id, utcnow())


def user_for_password(session: Session, email: str, password: str) -> User | None:
    """The user whose email and password these are; None for any mismatch."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.password_hash is None:
        # The same work as a real check, so the answer's timing does not tell which
        # email addresses have an account.
        password_matches(password, _dummy_hash())
        return None
    return user if password_matches(password, user.password_hash) else None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=32)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))
