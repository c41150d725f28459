"""The store: what the queue says differently to each database, behind one interface.

The queue's statements are the same on SQLite and PostgreSQL except for four things:
how a claim keeps two workers off one task, how many rows are inserted with their ids
in one go, how a batch of rows is inserted in one statement, and how idle workers
are woken. Each database's ``Store`` says them its way
(``sqlite.py``, ``postgresql.py``); ``store_for`` picks one per connection's dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.orm import Session

from reelwatch.database import Database
from reelwatch.engine.store.postgresql import NOTIFY_CHANNEL, PostgresqlStore
from reelwatch.engine.store.sqlite import SqliteStore


class Store(Protocol):
    @property
    def claim(self) -> Any:
        """UPDATE … RETURNING of the ``limit`` most urgent due tasks, leased."""

    @property
    def claim_same_kind(self) -> Any:
        """The same, restricted to the tasks of ``batch_kind``."""

    def worth_claiming(self, db: Database, queues: Iterable[str]) -> bool:
        """Whether a claim may find something (checked before its write transaction)."""

    def insert_rows(
        self, session: Session, table: Table, rows: Sequence[dict[str, Any]], returning: Any
    ) -> list[Any]:
        """Insert ``rows`` into ``table`` in a constant number of statements; the
        ``returning`` columns of each, in the order given."""

    def insert_many(self, session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (events, tasks) in the order given, in as few statements as it
        can."""

    def notify_new_work(self, session: Session) -> None:
        """Wake idle workers when this transaction commits."""


_STORES: dict[str, Store] = {"sqlite": SqliteStore(), "postgresql": PostgresqlStore()}


def store_for(session: Session) -> Store:
    """The store of the database ``session`` talks to."""
    return _STORES[session.get_bind().dialect.name]


def store_of(db: Database) -> Store:
    return _STORES["sqlite" if db.is_sqlite else "postgresql"]


__all__ = ["NOTIFY_CHANNEL", "Store", "store_for", "store_of"]
