"""SQLite: one writer at a time, so the claim needs no row locks (``BEGIN IMMEDIATE``
makes it exclusive) but should not take the write lock for nothing; events and other rows
go in with one ``executemany``, and so do many rows that need their ids; workers notice commits
through ``PRAGMA data_version``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from reelwatch.database import Database, utcnow
from reelwatch.engine.rows import EVENTS
from reelwatch.engine.store.statements import DUE_TASK, INSERT_EVENT, claim_statement


class SqliteStore:
    claim = claim_statement(same_kind=False, skip_locked=False)
    claim_same_kind = claim_statement(same_kind=True, skip_locked=False)

    def worth_claiming(self, db: Database, queues: Iterable[str]) -> bool:
        """Spare the single write lock when there is nothing to claim."""
        with db.read() as session:
            return bool(session.scalar(DUE_TASK, {"queues": list(queues), "now": utcnow()}))

    def insert_rows(
        self, session: Session, table: Table, rows: Sequence[dict[str, Any]], returning: Any
    ) -> list[Any]:
        """One row: INSERT … RETURNING. More: one ``executemany`` between reading the
        last id and the new rows (SQLite cannot return a multi-row insert's ids in order,
        but under the write lock an INTEGER PRIMARY KEY counts up from the last id)."""
        if len(rows) == 1:
            return list(session.execute(insert(table).returning(*returning), rows[0]))
        last = session.scalar(select(func.coalesce(func.max(table.c.id), 0)))
        session.execute(insert(table), list(rows))
        return list(
            session.execute(select(*returning).where(table.c.id > last).order_by(table.c.id))
        )

    def insert_many(self, session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            session.execute(INSERT_EVENT if table is EVENTS else insert(table), list(rows))

    def notify_new_work(self, session: Session) -> None:
        """Nothing to send: ``SqliteNotifier`` sees the commit itself."""
