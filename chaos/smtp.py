"""An SMTP server the chaos run controls: it records every delivery attempt, and can be
taken down (port closed) or made to refuse mail (451) and brought back.

Unlike reelwatch's built-in sink it does not fold repeats of a Message-ID into one, so
the checker sees every transmission and can tell a duplicate e-mail from a re-send of
the same one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, Envelope, Session

from reelwatch.notify.sink import FreePortController

_PARSER = BytesParser(policy=policy.default)


@dataclass(frozen=True)
class Delivery:
    """One DATA command: accepted (250) or refused (451) during a refusal outage."""

    at: datetime
    message_id: str
    recipients: tuple[str, ...]
    subject: str
    accepted: bool


class _RecordingHandler:
    def __init__(self) -> None:
        self.refusing = False
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        headers = _PARSER.parsebytes(envelope.original_content or b"", headersonly=True)
        delivery = Delivery(
            at=datetime.now(UTC),
            message_id=str(headers.get("Message-ID", "")).strip(),
            recipients=tuple(envelope.rcpt_tos),
            subject=str(headers.get("Subject", "")),
            accepted=not self.refusing,
        )
        with self.lock:
            self.deliveries.append(delivery)
        if self.refusing:
            return "451 4.3.0 chaos: refusing mail for now"
        return "250 2.0.0 OK"


class RecordingSmtp:
    """Listens on a loopback port that stays the same across ``stop``/``start``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._handler = _RecordingHandler()
        self._controller: FreePortController | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> None:
        if self._controller is not None:
            return
        controller = FreePortController(self._handler, hostname=self.host, port=self.port)
        controller.start()
        self.port = controller.port
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, refusing: bool) -> None:
        self._handler.refusing = refusing

    def deliveries(self) -> list[Delivery]:
        with self._handler.lock:
            return list(self._handler.deliveries)
