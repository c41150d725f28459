"""The built-in mail sink: what it stores, that it stores each Message-ID once (across
restarts too), and the ``reelwatch mail`` and ``reelwatch mock smtp`` commands.

Mail goes in through ``send_email`` over loopback, as the dispatcher sends it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from instance import free_port, wait_until
from reelwatch.notify.sink import MailSink, list_mail, read_mail
from reelwatch.notify.smtp import DeliveryError, check_smtp, send_email
from reelwatch.smtp_target import SmtpTarget


def compose(
    subject: str = "Your video is ready",
    message_id: str | None = "<m1@reelwatch>",
    body: str = "Hello Ada, your video is ready.",
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "reelwatch@localhost"
    message["To"] = "ada@example.org"
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(body)
    return message


def deliver(sink: MailSink, message: EmailMessage) -> None:
    send_email(SmtpTarget("127.0.0.1", sink.port), message, timeout_s=5)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail") as mail_sink:
        yield mail_sink


def test_stores_a_multipart_non_ascii_message_with_its_envelope(sink: MailSink) -> None:
    message = compose(subject="Ihr Video ist fertig: Größe ✓", body="Grüße, 視頻已準備好\n")
    message.add_alternative("<p>Grüße, <b>視頻</b></p>", subtype="html")
    message["Bcc"] = "audit@example.org"  # in the envelope, never in the stored headers
    before = datetime.now(UTC).replace(tzinfo=None)

    deliver(sink, message)

    [stored] = list_mail(sink.folder)
    assert stored.subject == "Ihr Video ist fertig: Größe ✓"
    assert stored.sender == "reelwatch@localhost"
    assert stored.recipients == ["ada@example.org", "audit@example.org"]
    assert stored.message_id == "<m1@reelwatch>"
    assert before - timedelta(seconds=1) <= stored.received_at <= before + timedelta(minutes=1)
    assert stored.path == sink.folder / f"{stored.id}.eml"
    assert stored.id.startswith(f"{stored.received_at:%Y%m%d-%H%M%S}-")

    copy = read_mail(sink.folder, stored.id)
    plain, html = copy.get_body(("plain",)), copy.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == "Grüße, 視頻已準備好\n"
    assert html.get_content().strip() == "<p>Grüße, <b>視頻</b></p>"
    assert "Bcc" not in copy


def test_lists_oldest_first(sink: MailSink) -> None:
    for n in range(3):
        deliver(sink, compose(subject=f"mail {n}", message_id=f"<order{n}@reelwatch>"))
    assert [m.subject for m in list_mail(sink.folder)] == ["mail 0", "mail 1", "mail 2"]


def test_a_message_id_is_stored_once(sink: MailSink) -> None:
    deliver(sink, compose(message_id="<same@reelwatch>"))
    deliver(sink, compose(message_id="<same@reelwatch>"))  # a dispatcher's re-send
    deliver(sink, compose(message_id="<other@reelwatch>"))
    assert sorted(m.message_id for m in list_mail(sink.folder)) == [
        "<other@reelwatch>",
        "<same@reelwatch>",
    ]


def test_a_message_id_is_stored_once_across_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    with MailSink(folder) as first:
        deliver(first, compose(message_id="<restart@reelwatch>"))
    with MailSink(folder) as second:  # a new process: it knows only the files
        deliver(second, compose(message_id="<restart@reelwatch>"))
    assert len(list_mail(folder)) == 1


def test_messages_without_message_id_are_all_kept(sink: MailSink) -> None:
    deliver(sink, compose(message_id=None))
    deliver(sink, compose(message_id=None))
    mails = list_mail(sink.folder)
    assert len(mails) == 2
    assert len({m.id for m in mails}) == 2
    assert all(m.message_id == "" for m in mails)


def test_the_envelope_is_not_taken_from_look_alike_headers(sink: MailSink) -> None:
    message = compose()
    message["X-Reelwatch-Envelope-To"] = "mallory@example.org"
    deliver(sink, message)
    [stored] = list_mail(sink.folder)
    assert stored.recipients == ["ada@example.org"]


def test_writes_leave_no_temporary_files_and_restart_clears_old_ones(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    leftover = folder / ".20250101-000000-deadbeef.1234abcd.tmp"  # a sink died mid-write
    leftover.write_bytes(b"Subject: half")
    with MailSink(folder) as sink:
        deliver(sink, compose())
    assert not leftover.exists()
    assert [p.suffix for p in folder.iterdir()] == [".eml"]


def test_port_zero_picks_a_free_port_kept_across_restarts(sink: MailSink) -> None:
    port = sink.port
    assert port > 0
    sink.stop()
    sink.start()
    assert sink.port == port
    deliver(sink, compose())


def test_refusing_answers_451_without_closing_the_port(sink: MailSink) -> None:
    sink.refuse(True)
    with pytest.raises(DeliveryError, match="451"):
        deliver(sink, compose())
    sink.refuse(False)
    deliver(sink, compose())
    assert len(list_mail(sink.folder)) == 1


def test_a_storage_failure_is_a_temporary_refusal(sink: MailSink) -> None:
    sink.folder.rename(sink.folder.with_name("moved"))
    sink.folder.write_bytes(b"")  # the folder is now a file: every write fails
    with pytest.raises(DeliveryError, match="451") as raised:
        deliver(sink, compose())
    assert not raised.value.permanent


def test_reading_unknown_or_unsafe_ids(sink: MailSink, tmp_path: Path) -> None:
    assert list_mail(tmp_path / "never-created") == []
    for mail_id in ("20250101-000000-00000000", "../mail", "", "a/b"):
        with pytest.raises(KeyError):
            read_mail(sink.folder, mail_id)


# --- the commands ----------------------------------------------------------------------


def reelwatch(*args: str, home: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reelwatch", *args],
        env=command_environment(home),
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def command_environment(home: Path) -> dict[str, str]:
    # The developer's own REELWATCH_* settings must not leak into the commands.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELWATCH_")}
    return env | {"REELWATCH_HOME": str(home), "COLUMNS": "200"}


def sink_accepts(target: SmtpTarget) -> bool:
    try:
        asyncio.run(check_smtp(target, timeout_s=1))
    except DeliveryError:
        return False
    return True


def test_mock_smtp_and_mail_commands(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    folder = home / "mail"
    command = [sys.executable, "-m", "reelwatch", "mock", "smtp", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--folder", str(folder)],
        env=command_environment(home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        target = SmtpTarget("127.0.0.1", port)
        wait_until(lambda: sink_accepts(target), timeout=20)
        send_email(target, compose(subject="[reelwatch] Your video “Cats” is ready"), timeout_s=5)

        listing = reelwatch("mail", home=home)
        assert listing.returncode == 0, listing.stderr
        assert "[reelwatch] Your video “Cats” is ready" in listing.stdout
        assert "ada@example.org" in listing.stdout

        [stored] = list_mail(folder)
        shown = reelwatch("mail", stored.id, home=home)
        assert shown.returncode == 0, shown.stderr
        assert "Subject: [reelwatch] Your video “Cats” is ready" in shown.stdout
        assert "Hello Ada, your video is ready." in shown.stdout

        unknown = reelwatch("mail", "20250101-000000-00000000", home=home)
        assert unknown.returncode == 1
        assert "no mail" in unknown.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=20)
    assert server.returncode == 0, stderr
    assert f"listening on smtp://127.0.0.1:{port}" in stdout
    assert str(folder.resolve()) in stdout


def test_mail_command_with_nothing_stored(tmp_path: Path) -> None:
    result = reelwatch("mail", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # not a terminal: one line a message, so none
    listed = reelwatch("mail", "--json", home=tmp_path / "home")
    assert listed.returncode == 0 and listed.stdout.strip() == "[]"
