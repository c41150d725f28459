"""A message that can never be built or sent (a line break in its Subject, a list of
addresses in its To) is parked with its reason, for admins to see, and never holds up
the messages claimed with it; on SQLite and PostgreSQL, with the real SMTP sink."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from reelwatch.cli.main import app
from reelwatch.config import Settings, load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import OutboxMessage, User
from reelwatch.insights.overview import build_overview
from reelwatch.notify import outbox
from reelwatch.notify.dispatcher import Dispatcher
from reelwatch.notify.sink import MailSink, list_mail

POISONS = {
    "email:poison:subject": ("eve@example.com", "Your video is ready: x\r\nBcc: spy@evil.example"),
    "email:poison:to": ("a@example.com, b@example.com\r\nBcc: c@evil.example", "hello"),
    "email:poison:list": ("a@example.com, b@example.com", "hello"),
}


def add_raw(db: Database, key: str, recipient: str, subject: str) -> None:
    """Straight into the table, as a row written before input was checked would be."""
    with db.write() as session:
        session.add(
            OutboxMessage(
                key=key,
                channel=outbox.EMAIL,
                recipient=recipient,
                subject=subject,
                body_text="body",
                state=outbox.PENDING,
                attempts=0,
                next_attempt_at=utcnow(),
                created_at=utcnow(),
            )
        )


def test_one_round_delivers_the_good_messages_and_parks_the_poisons(
    db: Database, settings: Settings, sink: MailSink, tmp_path: Path
) -> None:
    good = [f"user{i}@example.com" for i in range(3)]
    add_raw(db, "email:good:0", good[0], "first")
    for key, (recipient, subject) in POISONS.items():  # between the good ones
        add_raw(db, key, recipient, subject)
    for i, address in enumerate(good[1:], start=1):
        add_raw(db, f"email:good:{i}", address, f"message {i}")
    smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{sink.port}"})

    assert Dispatcher(db, smtp, owner="dispatcher").dispatch_due() == len(good)

    assert sorted(r for mail in list_mail(sink.folder) for r in mail.recipients) == good
    with db.read() as session:
        rows = {row.key: row for row in session.scalars(select(OutboxMessage))}
        assert {k: r.state for k, r in rows.items() if r.key.startswith("email:good")} == {
            f"email:good:{i}": outbox.SENT for i in range(3)
        }
        for key in POISONS:
            assert rows[key].state == outbox.REJECTED
            assert "cannot be built or sent" in (rows[key].last_error or "")
            assert rows[key].lease_expires_at is None
        assert build_overview(session, smtp)["parked_messages"] == len(POISONS)
    assert Dispatcher(db, smtp, owner="again").dispatch_due() == 0, "parked for good"

    listing = CliRunner().invoke(
        app,
        ["outbox", "--parked"],
        env={"REELWATCH_DATABASE_URL": db.url.render_as_string(hide_password=False)},
    )
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(POISONS), "parked only"
    [to_poison] = [line.split("\t") for line in lines if line.startswith("email:poison:to")]
    assert to_poison[1:3] == ["rejected", r"a@example.com, b@example.com\r\nBcc: c@evil.example"]
    assert "must be one e-mail address" in to_poison[4], "the reason"


@pytest.fixture(scope="module")
def one_round(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Dispatcher]]:
    """A database and a dispatcher pointed at the real sink, for many examples."""
    folder = tmp_path_factory.mktemp("rounds")
    url = f"sqlite:///{folder / 'reelwatch.db'}"
    upgrade_database(url)
    db, sink = Database(url), MailSink(folder / "mail")
    sink.start()
    smtp = load_settings(home=folder, smtp_url=f"smtp://127.0.0.1:{sink.port}")
    yield db, Dispatcher(db, smtp, owner="rounds")
    sink.stop()
    db.dispose()


@hypothesis.settings(max_examples=40, deadline=None)
@given(
    recipient=st.one_of(st.emails(), st.text(st.characters(codec="utf-8"), max_size=60)),
    subject=st.text(st.characters(codec="utf-8"), max_size=200),
)
def test_a_round_never_raises_whatever_a_stored_message_holds(
    one_round: tuple[Database, Dispatcher], recipient: str, subject: str
) -> None:
    db, dispatcher = one_round
    key = uuid.uuid4().hex
    add_raw(db, f"email:any:{key}", recipient, subject)
    add_raw(db, f"email:good:{key}", "good@example.com", "good")
    dispatcher.dispatch_due()
    with db.read() as session:
        states = dict(session.execute(select(OutboxMessage.key, OutboxMessage.state)).all())
    assert states[f"email:good:{key}"] == outbox.SENT
    assert states[f"email:any:{key}"] in (outbox.SENT, outbox.REJECTED)


def test_an_admin_row_with_a_bad_address_does_not_keep_alerts_from_the_others(
    db: Database, settings: Settings, sink: MailSink
) -> None:
    with db.write() as session:
        for email in ("ok@example.com", "bad@example.com\r\nBcc: spy@evil.example"):
            session.add(
                User(email=email, is_admin=True, token_hash=email[:60], created_at=utcnow())
            )
        outbox.enqueue(session, outbox.Message("alert:x", outbox.ALERT, outbox.ADMINS, "s", "b"))
    smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{sink.port}"})
    assert Dispatcher(db, smtp, owner="dispatcher").dispatch_due() == 1
    assert [m.recipients for m in list_mail(sink.folder)] == [["ok@example.com"]]
