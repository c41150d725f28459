"""Sending e-mail through real SMTP servers on loopback, and reading the SMTP URL.

Every delivery failure must say whether a retry can help: the dispatcher keeps the
temporary ones and records the permanent ones.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from reelwatch.notify.sink import FreePortController, MailSink, list_mail, read_mail
from reelwatch.notify.smtp import DeliveryError, check_smtp, send_email
from reelwatch.smtp_target import SmtpTarget


def compose(
    subject: str = "Your video is ready", message_id: str = "<t1@reelwatch>"
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "reelwatch@localhost"
    message["To"] = "ada@example.org"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content("Hello Ada, your video is ready.")
    return message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local(port: int, query: str = "") -> SmtpTarget:
    return SmtpTarget.from_url(f"smtp://127.0.0.1:{port}{query}")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail") as mail_sink:
        yield mail_sink


class Recorder:
    """An aiosmtpd handler that keeps envelopes in memory, or rejects every recipient."""

    def __init__(self, rcpt_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


class Authenticator:
    """Accepts one user name and password, and remembers every attempt."""

    def __init__(self, username: str, password: str) -> None:
        self.expected = (username.encode(), password.encode())
        self.attempts: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.attempts.append((data.login, data.password))
        # handled=False: aiosmtpd then answers 535 itself (True means "I already replied").
        success = (data.login, data.password) == self.expected
        return AuthResult(success=success, handled=False)


def serve(handler: object, **smtp_options: Any) -> FreePortController:
    controller = FreePortController(
        handler, hostname="127.0.0.1", port=0, server_hostname="test", **smtp_options
    )
    controller.start()
    return controller


# --- SMTP URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 25)),
        ("smtps://mail.example.com", SmtpTarget("mail.example.com", 465, use_tls=True)),
        ("SMTP://Mail.Example.com:2525/", SmtpTarget("mail.example.com", 2525)),
        (
            "smtp://ada%40example.org:p%3Ass%2Fw%40rd@mail.example.com:587",
            SmtpTarget("mail.example.com", 587, "ada@example.org", "p:ss/w@rd"),
        ),
        (
            "smtps://ada:secret@mail.example.com:2465",
            SmtpTarget("mail.example.com", 2465, "ada", "secret", use_tls=True),
        ),
        ("smtp://127.0.0.1:25?starttls=require", SmtpTarget("127.0.0.1", 25, start_tls=True)),
        ("smtp://[::1]:2525?starttls=never", SmtpTarget("::1", 2525, start_tls=False)),
    ],
)
def test_from_url_reads_host_port_credentials_and_tls(url: str, expected: SmtpTarget) -> None:
    assert SmtpTarget.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mail.example.com:25", "must look like smtp://"),
        ("http://ada:s3cret@mail.example.com", "not http://"),
        ("smtp://", "no host name"),
        ("smtp://ada:s3cret@mail.example.com:99999", "port must be a number from 1 to 65535"),
        ("smtp://ada:s3cret@mail.example.com:twentyfive", "port must be a number"),
        ("smtp://mail.example.com:25/inbox", "must not have a path"),
        ("smtp://ada@mail.example.com", "user name but no password"),
        ("smtp://:s3cret@mail.example.com", "password but no user name"),
        ("smtp://mail.example.com?tls=yes", "unknown option 'tls'"),
        ("smtp://mail.example.com?starttls=maybe", "require or never, not 'maybe'"),
        ("smtps://mail.example.com?starttls=require", "smtps:// is TLS already"),
    ],
)
def test_from_url_says_what_is_wrong_in_one_line(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=r"^SMTP URL") as raised:
        SmtpTarget.from_url(url)
    message = str(raised.value)
    assert complaint in message
    assert "\n" not in message
    assert "s3cret" not in message


def test_redacted_never_shows_the_password() -> None:
    target = SmtpTarget.from_url("smtp://ada:s3cret@mail.example.com:587?starttls=require")
    assert target.redacted() == "smtp://ada:***@mail.example.com:587?starttls=require"
    assert SmtpTarget("::1", 465, use_tls=True).redacted() == "smtps://[::1]:465"


# --- delivery --------------------------------------------------------------------------


def test_send_email_delivers_into_the_sink(sink: MailSink) -> None:
    message = compose(subject="Vidéo prête ✓")
    message.add_alternative("<p>Hello <b>Ada</b></p>", subtype="html")

    send_email(local(sink.port), message)

    [stored] = list_mail(sink.folder)
    assert (stored.sender, stored.recipients) == ("reelwatch@localhost", ["ada@example.org"])
    assert stored.subject == "Vidéo prête ✓"
    body = read_mail(sink.folder, stored.id).get_body(preferencelist=("html",))
    assert body is not None
    assert "<b>Ada</b>" in body.get_content()


def test_connection_refused_is_temporary() -> None:
    with pytest.raises(DeliveryError) as raised:
        send_email(local(free_port()), compose(), timeout_s=5)
    assert not raised.value.permanent
    assert "cannot connect" in str(raised.value)


def test_a_server_that_never_answers_times_out_as_temporary() -> None:
    with socket.socket() as silent:  # the kernel accepts the connection; nobody greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(DeliveryError) as raised:
            send_email(local(silent.getsockname()[1]), compose(), timeout_s=0.5)
    assert not raised.value.permanent
    assert "timed out" in str(raised.value)


def test_a_refusing_sink_is_a_temporary_failure_and_stores_nothing(sink: MailSink) -> None:
    sink.refuse(True)
    with pytest.raises(DeliveryError) as raised:
        send_email(local(sink.port), compose())
    assert not raised.value.permanent
    assert "451" in str(raised.value)
    assert list_mail(sink.folder) == []

    sink.refuse(False)
    send_email(local(sink.port), compose())
    assert len(list_mail(sink.folder)) == 1


def test_a_stopped_sink_is_a_temporary_failure_until_it_is_back(sink: MailSink) -> None:
    sink.stop()
    with pytest.raises(DeliveryError) as raised:
        send_email(local(sink.port), compose(), timeout_s=5)
    assert not raised.value.permanent

    sink.start()  # same port again, so clients need no new settings
    send_email(local(sink.port), compose())
    assert len(list_mail(sink.folder)) == 1


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("550 5.1.1 no such user", True), ("450 4.2.1 mailbox busy, try later", False)],
)
def test_a_refused_recipient_is_permanent_only_for_5xx(reply: str, permanent: bool) -> None:
    controller = serve(Recorder(rcpt_reply=reply))
    try:
        with pytest.raises(DeliveryError) as raised:
            send_email(local(controller.port), compose())
    finally:
        controller.stop()
    assert raised.value.permanent is permanent
    assert reply in str(raised.value)
    assert "ada@example.org" in str(raised.value)


def test_a_5xx_after_data_is_permanent() -> None:
    class RejectsContent(Recorder):
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            return "554 5.6.0 message content rejected"

    controller = serve(RejectsContent())
    try:
        with pytest.raises(DeliveryError) as raised:
            send_email(local(controller.port), compose())
    finally:
        controller.stop()
    assert raised.value.permanent


def test_username_and_password_are_sent_with_auth() -> None:
    recorder, authenticator = Recorder(), Authenticator("ada@example.org", "p:ss w@rd")
    controller = serve(recorder, authenticator=authenticator, auth_require_tls=False)
    url = f"smtp://ada%40example.org:p%3Ass%20w%40rd@127.0.0.1:{controller.port}"
    good = SmtpTarget.from_url(url)
    wrong = SmtpTarget("127.0.0.1", controller.port, "ada@example.org", "wrong")
    try:
        send_email(good, compose(), timeout_s=5)
        with pytest.raises(DeliveryError) as raised:
            send_email(wrong, compose(), timeout_s=5)
    finally:
        controller.stop()
    assert authenticator.attempts[0] == (b"ada@example.org", b"p:ss w@rd")
    assert len(recorder.envelopes) == 1
    # Wrong credentials are a setting to fix, after which the outbox delivers: not final.
    assert not raised.value.permanent
    assert "535" in str(raised.value)
    assert "wrong" not in str(raised.value)


def test_check_smtp_greets_and_quits(sink: MailSink) -> None:
    asyncio.run(check_smtp(local(sink.port)))
    assert list_mail(sink.folder) == []

    with pytest.raises(DeliveryError) as raised:
        asyncio.run(check_smtp(local(free_port())))
    assert not raised.value.permanent


# --- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def test_starttls_then_auth_when_the_certificate_is_trusted(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust our self-signed one
    recorder, authenticator = Recorder(), Authenticator("ada", "secret")
    controller = serve(
        recorder, tls_context=server_tls(certificate), require_starttls=True,
        authenticator=authenticator,
    )  # fmt: skip
    try:
        url = f"smtp://ada:secret@127.0.0.1:{controller.port}?starttls=require"
        send_email(SmtpTarget.from_url(url), compose())
    finally:
        controller.stop()
    assert authenticator.attempts == [(b"ada", b"secret")]
    assert len(recorder.envelopes) == 1


def test_implicit_tls_with_smtps(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    recorder = Recorder()
    controller = FreePortController(
        recorder, hostname="127.0.0.1", port=0, ssl_context=server_tls(certificate)
    )
    controller.start()
    try:
        send_email(SmtpTarget.from_url(f"smtps://127.0.0.1:{controller.port}"), compose())
    finally:
        controller.stop()
    assert len(recorder.envelopes) == 1


def test_an_untrusted_certificate_is_a_temporary_failure(certificate: tuple[Path, Path]) -> None:
    controller = serve(Recorder(), tls_context=server_tls(certificate))
    try:
        with pytest.raises(DeliveryError) as raised:
            send_email(local(controller.port), compose(), timeout_s=5)
    finally:
        controller.stop()
    assert not raised.value.permanent
    assert "TLS" in str(raised.value) or "certificate" in str(raised.value)


def test_starttls_required_but_not_offered_is_a_temporary_failure(sink: MailSink) -> None:
    with pytest.raises(DeliveryError) as raised:
        send_email(local(sink.port, "?starttls=require"), compose())
    assert not raised.value.permanent
    assert list_mail(sink.folder) == []
