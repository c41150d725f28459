"""API token → user, remembered for ``TOKEN_CACHE_SECONDS`` in each server process, so that
a client polling a video's status costs one user lookup every few seconds instead of one
per request.

The bound, security first: a token stops working at most ``TOKEN_CACHE_SECONDS`` after
it is replaced (``reelwatch.accounts.rotate_token``, the only way a token ends; users are
never deleted or demoted). Unknown tokens are not remembered, so a new token works at
once and guessing costs a lookup per guess, as before. Each request gets its own copy of
the user, detached like one read from a closed session, never a shared object.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import make_transient_to_detached

from reelwatch.accounts import hash_token, user_for_token
from reelwatch.database import Database
from reelwatch.db.models import User

TOKEN_CACHE_SECONDS = 2.0
# Far more than the clients of one process; past it the oldest half is dropped.
MAX_CACHED_TOKENS = 4096
_USER_COLUMNS = ("id", "email", "is_admin", "token_hash", "created_at", "password_hash")


@dataclass(frozen=True, slots=True)
class Bearer:
    """What the status read needs of a token's user (``reelwatch.api.status_reads``):
    immutable, so one is shared by the requests of its token, and no ORM object is
    built for them."""

    id: int
    is_admin: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    values: tuple[object, ...]
    bearer: Bearer
    expires: float


class TokenCache:
    def __init__(self, seconds: float = TOKEN_CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> User | None:
        """The user of ``token`` if it was looked up less than ``seconds`` ago."""
        entry = self._fresh(token)
        return _user(entry.values) if entry is not None else None

    def cached_bearer(self, token: str) -> Bearer | None:
        entry = self._fresh(token)
        return entry.bearer if entry is not None else None

    def _fresh(self, token: str) -> _Entry | None:
        entry = self._entries.get(hash_token(token))
        return entry if entry is not None and entry.expires > time.monotonic() else None

    def lookup(self, db: Database, token: str) -> User | None:
        """The user of ``token`` from the database (blocking: call it off the event loop)."""
        with db.read() as session:
            user = user_for_token(session, token)
            if user is None:
                return None
            values = tuple(getattr(user, name) for name in _USER_COLUMNS)
        bearer = Bearer(user.id, user.is_admin)
        self._remember(user.token_hash, _Entry(values, bearer, time.monotonic() + self.seconds))
        return user

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _remember(self, token_hash: str, entry: _Entry) -> None:
        with self._lock:
            if len(self._entries) >= MAX_CACHED_TOKENS:
                for key in list(self._entries)[: MAX_CACHED_TOKENS // 2]:
                    del self._entries[key]
            self._entries[token_hash] = entry


def _user(values: tuple[object, ...]) -> User:
    user = User(**dict(zip(_USER_COLUMNS, values, strict=True)))
    make_transient_to_detached(user)
    return user
