"""The dispatcher waits out a database outage to record a delivery (found by the chaos
suite: a PostgreSQL restart between the SMTP server's answer and the record left the
message leased for two minutes, to be sent again when the lease ran out)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.db.models import OutboxMessage
from reelwatch.notify import outbox
from reelwatch.notify.dispatcher import Dispatcher
from reelwatch.notify.sink import MailSink, list_mail


def test_a_delivery_is_recorded_once_the_database_is_back(
    db: Database, settings: Settings, sink: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.write() as session:
        outbox.enqueue(session, outbox.Message("email:k", outbox.EMAIL, "a@example.com", "s", "b"))
    record = outbox.mark_sent
    outages = [OperationalError("UPDATE outbox", {}, Exception("server closed the connection"))]

    def mark_sent_after_an_outage(database: Database, messages: list[OutboxMessage]) -> None:
        if outages:
            raise outages.pop()
        record(database, messages)

    monkeypatch.setattr(outbox, "mark_sent", mark_sent_after_an_outage)
    smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{sink.port}"})
    assert Dispatcher(db, smtp, owner="dispatcher").dispatch_due() == 1
    with db.read() as session:
        assert session.scalars(select(OutboxMessage.state)).all() == [outbox.SENT]
    assert len(list_mail(sink.folder)) == 1
