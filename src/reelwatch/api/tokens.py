"""API token → user, remembered for ``TOKEN_CACHE_SECONDS`` in each server process, so that
a client polling a video's status costs one user lookup every second instead of one per
request.

The bound, security first: a token stops working at most ``TOKEN_CACHE_SECONDS`` after
it is replaced (``reelwatch.accounts.rotate_token``, the only way a token ends; users are
never deleted or demoted). Unknown tokens are not remembered, so a new token works at
once and guessing costs a lookup per guess, as before. Each request gets its own copy of
the user, detached like one read from a closed session, never a shared object.

One lookup per token at a time: the requests that miss together wait for the same one
(no stampede of lookups when an entry expires under load), and an entry past half its
life is looked up again in the background while it still answers, so a busy token's
requests never wait for the database at all.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import make_transient_to_detached
from starlette.concurrency import run_in_threadpool

from reelwatch.accounts import hash_token, user_for_token
from reelwatch.database import Database
from reelwatch.db.models import User

TOKEN_CACHE_SECONDS = 2.0
# Far more than the clients of one process; past it the oldest half is dropped.
MAX_CACHED_TOKENS = 4096
# Every column, so the copy a request gets is the whole user (a column added later too).
_USER_COLUMNS = tuple(column.key for column in User.__table__.columns)


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
        self._lock = threading.Lock()  # lookups finish in the thread pool
        self._lookups: dict[str, asyncio.Future[None]] = {}  # the event loop's only

    async def user(self, db: Database, token: str) -> User | None:
        entry = await self._entry(db, token)
        return _user(entry.values) if entry is not None else None

    async def bearer(self, db: Database, token: str) -> Bearer | None:
        entry = await self._entry(db, token)
        return entry.bearer if entry is not None else None

    async def _entry(self, db: Database, token: str) -> _Entry | None:
        key = hash_token(token)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now < entry.expires:
            if now >= entry.expires - self.seconds / 2:
                self._lookup(db, token, key)  # in the background: this entry answers
            return entry
        await asyncio.shield(self._lookup(db, token, key))
        entry = self._entries.get(key)
        return entry if entry is not None and time.monotonic() < entry.expires else None

    def _lookup(self, db: Database, token: str, key: str) -> asyncio.Future[None]:
        """The running lookup of ``key``, or a new one in the thread pool."""
        running = self._lookups.get(key)
        if running is not None and running.get_loop() is asyncio.get_running_loop():
            return running
        running = asyncio.ensure_future(run_in_threadpool(self._look_up, db, token, key))
        self._lookups[key] = running
        running.add_done_callback(lambda done: self._finished(key, done))
        return running

    def _finished(self, key: str, done: asyncio.Future[None]) -> None:
        if self._lookups.get(key) is done:
            del self._lookups[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failed background refresh just lets it expire

    def _look_up(self, db: Database, token: str, key: str) -> None:
        """Blocking: the database's answer for ``token``, remembered or forgotten."""
        asked = time.monotonic()  # the bound counts from before the database answered
        with db.read() as session:
            user = user_for_token(session, token)
            values = tuple(getattr(user, name) for name in _USER_COLUMNS) if user else None
        with self._lock:
            if user is None or values is None:
                self._entries.pop(key, None)  # replaced: forgotten at once
                return
            if len(self._entries) >= MAX_CACHED_TOKENS:
                for old in list(self._entries)[: MAX_CACHED_TOKENS // 2]:
                    del self._entries[old]
            bearer = Bearer(user.id, user.is_admin)
            self._entries[key] = _Entry(values, bearer, asked + self.seconds)


def _user(values: tuple[object, ...]) -> User:
    user = User(**dict(zip(_USER_COLUMNS, values, strict=True)))
    make_transient_to_detached(user)
    return user
