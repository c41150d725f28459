"""The built-in mail sink: a local SMTP server that keeps every accepted message as a file.

``reelwatch up`` runs it when ``REELWATCH_SMTP_URL`` is unset, ``reelwatch mock smtp`` runs
it alone, and ``list_mail``/``read_mail`` read back what it stored in ``$REELWATCH_HOME/mail``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

SERVER_NAME = "reelwatch-sink"
RECEIVED = "X-Reelwatch-Received"
ENVELOPE_FROM = "X-Reelwatch-Envelope-From"
ENVELOPE_TO = "X-Reelwatch-Envelope-To"
ENVELOPE_PREFIX = b"X-Reelwatch-"
MAIL_SUFFIX = ".eml"
TEMP_SUFFIX = ".tmp"

_PARSER = BytesParser(_class=EmailMessage, policy=policy.default)


@dataclass(frozen=True)
class StoredMail:
    id: str  # received time to the second + 8 hex of the Message-ID's SHA-256
    received_at: datetime  # naive UTC
    sender: str
    recipients: list[str]
    subject: str
    message_id: str
    path: Path  # the .eml file


class MailSink:
    """aiosmtpd on ``host:port`` storing each accepted message as an ``.eml`` in ``folder``.

    A Message-ID already in the folder is answered 250 and not stored again, so a
    dispatcher's re-send after a crash leaves one copy, across restarts of the sink too.
    """

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.folder = Path(folder)
        self.host = host
        self._port = port  # 0 until start() has picked a free one
        self._handler = _StoringHandler(self.folder)
        self._controller: FreePortController | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if self._controller is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        _remove_temp_files(self.folder)
        controller = FreePortController(
            self._handler, hostname=self.host, port=self._port, server_hostname=SERVER_NAME
        )
        controller.start()
        # Kept, so that a restart after stop() listens where clients already point.
        self._port = controller.port
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, refusing: bool = True) -> None:
        """Answer 451 to DATA while ``refusing``: an SMTP outage without closing the port."""
        self._handler.refusing = refusing

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class FreePortController(Controller):
    """aiosmtpd's threaded Controller that also takes port 0 and then knows its real port.

    The stock one connects to its own port to finish starting, which fails for port 0.
    """

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _StoringHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.refusing = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusing:
            return "451 4.3.0 the mail sink is refusing mail for now; try again later"
        # Stored with the local line ending, as mailbox.Maildir does, so that the text
        # parts read back as Python text ("\n") and the file reads well in a pager.
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        message_id = _message_id(content)
        # Blocking file I/O inside the event loop: a development sink handles one
        # message at a time, and that also makes check-then-store free of races.
        if message_id and _find_by_message_id(self.folder, message_id):
            return "250 2.0.0 OK: already stored"
        received_at = _utcnow()
        path = self.folder / f"{_mail_id(received_at, message_id, content)}{MAIL_SUFFIX}"
        if path.exists():  # same second and same 32-bit hash: let the client come back
            return "451 4.3.0 busy storing a similar message; try again"
        header = _envelope_header(received_at, envelope.mail_from or "", envelope.rcpt_tos)
        try:
            _write_atomically(path, header + content)
        except OSError as exc:  # a full disk is temporary; aiosmtpd would answer 500
            return f"451 4.3.0 cannot store the message now: {exc.strerror or exc}"
        return "250 2.0.0 OK: stored"


def list_mail(folder: Path) -> list[StoredMail]:
    """Every stored message, oldest first; ``[]`` when nothing was ever stored."""
    if not folder.is_dir():
        return []
    mails: list[StoredMail] = []
    for path in folder.glob(f"*{MAIL_SUFFIX}"):
        try:
            mails.append(_stored_mail(path))
        except FileNotFoundError:  # deleted since the listing
            continue
    return sorted(mails, key=lambda mail: (mail.received_at, mail.id))


def read_mail(folder: Path, mail_id: str) -> EmailMessage:
    """The stored message ``mail_id`` (envelope headers first); ``KeyError`` if unknown."""
    # The id may come from a URL or a command line: it must not name another path.
    if not mail_id or not all(c.isalnum() or c == "-" for c in mail_id):
        raise KeyError(mail_id)
    path = folder / f"{mail_id}{MAIL_SUFFIX}"
    try:
        return _PARSER.parsebytes(path.read_bytes())
    except FileNotFoundError:
        raise KeyError(mail_id) from None


def _stored_mail(path: Path) -> StoredMail:
    raw = path.read_bytes()
    envelope = _envelope_fields(raw)
    message = _PARSER.parsebytes(raw, headersonly=True)
    received = envelope.get(RECEIVED.lower())
    sender = envelope.get(ENVELOPE_FROM.lower())
    recipients = envelope.get(ENVELOPE_TO.lower())
    return StoredMail(
        id=path.stem,
        # A hand-placed .eml has no envelope: fall back to the file and its headers.
        received_at=(datetime.fromisoformat(received[0]) if received else _file_time(path)),
        sender=sender[0] if sender else str(message.get("From", "")),
        recipients=recipients if recipients else [str(message.get("To", ""))],
        subject=str(message.get("Subject", "")),
        message_id=str(message.get("Message-ID", "")).strip(),
        path=path,
    )


def _envelope_header(received_at: datetime, sender: str, recipients: list[str]) -> bytes:
    lines = [f"{RECEIVED}: {received_at.isoformat()}", f"{ENVELOPE_FROM}: {sender}"]
    lines += [f"{ENVELOPE_TO}: {recipient}" for recipient in recipients]
    return "".join(f"{line}\n" for line in lines).encode()


def _envelope_fields(raw: bytes) -> dict[str, list[str]]:
    """The sink's own header lines, read from the top only, so that a message carrying
    look-alike headers of its own cannot change its envelope."""
    fields: dict[str, list[str]] = {}
    rest = raw
    while rest.startswith(ENVELOPE_PREFIX):
        line, _, rest = rest.partition(b"\n")
        name, _, value = line.decode(errors="replace").partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


def _message_id(content: bytes) -> str:
    return str(_PARSER.parsebytes(content, headersonly=True).get("Message-ID", "")).strip()


def _mail_id(received_at: datetime, message_id: str, content: bytes) -> str:
    # Without a Message-ID the content and the instant stand in, so the id stays unique.
    key = message_id.encode() if message_id else content + received_at.isoformat().encode()
    return f"{received_at:%Y%m%d-%H%M%S}-{hashlib.sha256(key).hexdigest()[:8]}"


def _find_by_message_id(folder: Path, message_id: str) -> Path | None:
    # The file name carries the hash, so only likely candidates are opened.
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:8]
    for path in folder.glob(f"*-{digest}{MAIL_SUFFIX}"):
        if _message_id(path.read_bytes()) == message_id:
            return path
    return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write under a temporary name, fsync, rename, fsync the folder: never half a mail."""
    temp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    with temp.open("xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temp.replace(path)
    folder_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)


def _remove_temp_files(folder: Path) -> None:
    """Leftovers of a sink that died mid-write; the client was never told 250 for them."""
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)


def _file_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
