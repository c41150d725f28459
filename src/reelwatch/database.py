"""The ``Database`` handle: one SQLAlchemy engine, set up for SQLite or PostgreSQL.

SQLite runs in WAL mode with a busy timeout and foreign keys on; write transactions
start with ``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of failing
when a read lock would have to be upgraded. PostgreSQL needs none of that.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# libpq options a PostgreSQL URL gets unless it sets them, so that a dead primary holds
# nothing for minutes: 5 s to connect to each host (psycopg's own default is 130 s per
# address); an idle connection (LISTEN, the pool) to a host that vanished without
# closing it is found dead after about 25 s of keepalives, and one whose sent data is
# not acknowledged after 30 s (instead of the kernel's ~15 min of retransmissions).
POSTGRES_CONNECTION_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
# PostgreSQL SQLSTATEs worth re-running a transaction for: deadlock, serialization.
_TRANSIENT_SQLSTATES = {"40P01", "40001"}


log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def utcnow() -> datetime:
    """Naive UTC now: the one clock every table uses."""
    return datetime.now(UTC).replace(tzinfo=None)


class Database:
    """Sessions for reads and writes, with the dialect's quirks handled in one place."""

    def __init__(self, url: str | URL, *, pool_size: int = 5) -> None:
        self.url = with_connection_defaults(make_url(url))
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine(pool_size)
        writer = self.engine.execution_options(reelwatch_immediate=True)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(writer, expire_on_commit=False)
        self._pool_size = pool_size

    def _create_engine(self, pool_size: int) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
        if self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=10,
        )
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; on SQLite it takes no write lock."""
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def read_rows(self) -> Iterator[Connection]:
        """A connection for Core queries on a hot path: a session's bookkeeping costs
        more than a small query. Like ``read``, it takes no write lock on SQLite."""
        with self.engine.connect() as connection:
            yield connection

    @property
    def reads_without_waiting(self) -> bool:
        """Whether ``read_without_waiting`` may be used: SQLite, in a file."""
        return self.is_sqlite and self.url.database not in (None, "", ":memory:")

    @contextmanager
    def read_without_waiting(self) -> Iterator[Connection]:
        """SQLite in a file only: a connection for one small read made on the event loop
        itself, saving the trip to a thread. It never waits: a lock raises
        OperationalError at once (busy timeout 0), and the caller then reads the usual
        way, off the loop. No BEGIN: one statement reads one snapshot by itself."""
        if not self.reads_without_waiting:
            raise ValueError("reads without waiting are for SQLite in a file")
        with self._unwaiting.connect() as connection:
            yield connection

    @contextmanager
    def read_statement(self) -> Iterator[Connection]:
        """A connection for one statement whose caller reads the usual way on any error.
        On PostgreSQL: autocommit (no BEGIN and ROLLBACK round trips) and no ping before
        use (a dead connection fails the statement and is dropped). On SQLite:
        ``read_rows``."""
        with (self.engine if self.is_sqlite else self._statements).connect() as connection:
            yield connection

    # The engines of the status read's short path (api/status_reads.py), made when first
    # used: only API servers read that way.
    @functools.cached_property
    def _unwaiting(self) -> Engine:
        engine = create_engine(
            self.url,
            connect_args={"timeout": 0, "check_same_thread": False},
            pool_size=1,
            max_overflow=4,
        )
        configure = functools.partial(_configure_sqlite_connection, busy_timeout_ms=0)
        event.listen(engine, "connect", configure)
        return engine

    @functools.cached_property
    def _statements(self) -> Engine:
        return create_engine(
            self.url, pool_size=self._pool_size, max_overflow=10, isolation_level="AUTOCOMMIT"
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception."""
        with self._write_sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        for lazy in ("_unwaiting", "_statements"):
            if lazy in self.__dict__:  # made: cached_property keeps it there
                self.__dict__[lazy].dispose()

    def connect_arguments(self) -> dict[str, Any]:
        """What psycopg.connect takes for this URL, for a connection of our own (LISTEN):
        the dialect's translation, which turns several ``host=h:port`` into libpq's
        ``host=h1,h2 port=p1,p2`` (a URL rendered as a string would keep the last host)."""
        args, kwargs = self.engine.dialect.create_connect_args(self.url)
        if args:
            raise ValueError("unexpected positional connection arguments")
        return dict(kwargs)


def with_connection_defaults(url: URL) -> URL:
    """A PostgreSQL ``url`` with ``POSTGRES_CONNECTION_DEFAULTS`` for the options it does
    not set itself."""
    if url.get_backend_name() == "sqlite":
        return url
    missing = {k: v for k, v in POSTGRES_CONNECTION_DEFAULTS.items() if k not in url.query}
    return url.update_query_dict(missing)


def _configure_sqlite_connection(
    dbapi_connection: Any, _record: Any, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred-only).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a committed upload survives power loss, not only a process crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("reelwatch_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_transient_conflict(exc: DBAPIError) -> bool:
    """A deadlock, serialization failure or SQLite lock timeout: safe to re-run."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in _TRANSIENT_SQLSTATES or "database is locked" in str(exc.orig)


def retry_on_conflict(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-run a function that opens its own transaction when the database aborted it
    for a conflict; the function must be safe to repeat (the aborted try left nothing)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, 6):
            try:
                return fn(*args, **kwargs)
            except DBAPIError as exc:
                if attempt == 5 or not is_transient_conflict(exc):
                    raise
                log.info("%s: transient conflict (%s), retrying", fn.__name__, exc.orig)
                time.sleep(random.uniform(0, 0.05 * attempt))
        raise AssertionError("unreachable")

    return wrapper
