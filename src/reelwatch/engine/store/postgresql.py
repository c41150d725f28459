"""PostgreSQL: concurrent claims skip each other's rows (``FOR UPDATE SKIP LOCKED``), a
batch of events is one ``INSERT … SELECT FROM unnest(…)``, and ``NOTIFY`` wakes idle
workers when the transaction commits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session

from reelwatch.database import Database
from reelwatch.engine.store.statements import INSERT_EVENT, claim_statement

NOTIFY_CHANNEL = "reelwatch_tasks"

_NOTIFY = text("SELECT pg_notify(:channel, '')")
_INSERT_EVENTS_UNNEST = text(
    "INSERT INTO events (at, kind, workflow_id, subject_id, task, attempt, worker, data) "
    "SELECT at, kind, workflow_id, subject_id, task, attempt, worker, data "
    "FROM unnest(CAST(:at AS timestamp[]), CAST(:kind AS varchar[]), "
    "CAST(:workflow_id AS bigint[]), CAST(:subject_id AS varchar[]), "
    "CAST(:task AS varchar[]), CAST(:attempt AS integer[]), CAST(:worker AS varchar[]), "
    "CAST(:data AS json[])) WITH ORDINALITY "
    "AS batch(at, kind, workflow_id, subject_id, task, attempt, worker, data, position) "
    "ORDER BY position"  # ids in the order the events were recorded
)


class PostgresqlStore:
    claim = claim_statement(same_kind=False, skip_locked=True)
    claim_same_kind = claim_statement(same_kind=True, skip_locked=True)

    def worth_claiming(self, db: Database, queues: Iterable[str]) -> bool:
        """Always: an empty claim costs no more than the check would."""
        return True

    def insert_rows(
        self, session: Session, table: Table, rows: Sequence[dict[str, Any]], returning: Any
    ) -> list[Any]:
        """One multi-row INSERT … RETURNING (a page of 1,000 rows per statement)."""
        statement = insert(table).returning(*returning, sort_by_parameter_order=True)
        return list(session.execute(statement, list(rows)))

    def insert_events(self, session: Session, events: Sequence[dict[str, Any]]) -> None:
        if len(events) > 1:
            # One statement for the whole batch: psycopg's executemany is one INSERT per
            # row, and a multi-row VALUES is parsed afresh for every batch size.
            columns = {name: [values[name] for values in events] for name in events[0]}
            columns["data"] = [json.dumps(data) for data in columns["data"]]
            session.execute(_INSERT_EVENTS_UNNEST, columns)
        elif events:
            session.execute(INSERT_EVENT, events[0])

    def notify_new_work(self, session: Session) -> None:
        """NOTIFY is transactional: idle workers wake when this commits."""
        session.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})
