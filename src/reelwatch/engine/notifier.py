"""Wake idle workers the moment new work is committed, instead of polling the queue.

PostgreSQL delivers ``NOTIFY reelwatch_tasks`` on a dedicated LISTEN connection.
SQLite has no notifications, so a worker watches ``PRAGMA data_version``, which changes
when any other connection commits and costs microseconds to read.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Protocol

import psycopg
from sqlalchemy.engine import URL

from reelwatch.database import SQLITE_BUSY_TIMEOUT_MS, Database
from reelwatch.engine.store import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

SQLITE_POLL_INTERVAL_S = 0.002


class WorkNotifier(Protocol):
    def wait(self, timeout: float) -> None:
        """Return when new work may have been committed, or after ``timeout`` seconds."""

    def close(self) -> None: ...


def notifier_for(db: Database) -> WorkNotifier:
    return SqliteNotifier(db.url) if db.is_sqlite else PostgresNotifier(db)


class SqliteNotifier:
    def __init__(self, url: URL) -> None:
        self._connection = sqlite3.connect(
            url.database or ":memory:",
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        self._seen = self._data_version()

    def _data_version(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            version = self._data_version()
            if version != self._seen:
                self._seen = version
                return
            time.sleep(SQLITE_POLL_INTERVAL_S)

    def close(self) -> None:
        self._connection.close()


class PostgresNotifier:
    """LISTENs on its own connection, to whichever host of the URL accepts writes
    (``target_session_attrs=read-write``): after a failover, to the promoted standby."""

    def __init__(self, db: Database) -> None:
        self._connect_arguments = db.connect_arguments()
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        try:  # listen from the start: a NOTIFY sent before the first wait is not lost
            self._listening_connection()
        except psycopg.Error as exc:
            log.warning("cannot LISTEN yet (%s); will retry", exc)

    def _listening_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(**self._connect_arguments, autocommit=True)
            self._connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            log.info("listening for new work on %s", self.listening_on())
        return self._connection

    def listening_on(self) -> str | None:
        """``host:port`` of the server this notifier listens to, if connected."""
        if self._connection is None or self._connection.closed:
            return None
        return f"{self._connection.info.host}:{self._connection.info.port}"

    def wait(self, timeout: float) -> None:
        try:
            connection = self._listening_connection()
            for _ in connection.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as exc:
            # The database went away: fall back to sleeping; the next wait reconnects
            # (the worker polls the queue meanwhile, so no work waits for LISTEN).
            log.warning("LISTEN connection lost (%s); reconnecting", exc)
            self.close()
            time.sleep(min(timeout, 1.0))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
