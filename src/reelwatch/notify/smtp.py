"""Sending e-mail over SMTP to the target of ``REELWATCH_SMTP_URL`` (``reelwatch.smtp_target``).

Every failure becomes a ``DeliveryError`` that says whether retrying later can help, so
the dispatcher keeps temporary failures in the outbox and records permanent rejections.
"""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage

import aiosmtplib

from reelwatch.smtp_target import SmtpTarget


class DeliveryError(Exception):
    """A message could not be handed to the SMTP server.

    ``permanent`` is true only when the server refused the message or recipient for
    good; everything else (the server away, timeouts, TLS trouble, 4xx) may work later.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def send_email(target: SmtpTarget, message: EmailMessage, *, timeout_s: float = 30.0) -> None:
    """Hand ``message`` to the server; raise ``DeliveryError`` unless every recipient took it.

    Synchronous: the dispatcher is a plain thread, so each call runs its own event loop.
    """
    try:
        refused, _ = asyncio.run(
            aiosmtplib.send(message, **target.client_options(), timeout=timeout_s)
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise delivery_error(exc, target) from exc
    except ValueError as exc:  # aiosmtplib found no sender/recipients or a malformed address
        raise DeliveryError(f"the message cannot be sent: {exc}", permanent=True) from exc
    if refused:
        # Others took it: a retry would send it to them twice, so this is final.
        detail = "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in refused.items())
        raise DeliveryError(
            f"{target.redacted()} refused some recipients: {detail}", permanent=True
        )


async def check_smtp(target: SmtpTarget, *, timeout_s: float = 5.0) -> None:
    """Connect, greet (EHLO, STARTTLS and login as configured) and QUIT; for readiness."""
    client = aiosmtplib.SMTP(**target.client_options(), timeout=timeout_s)
    try:
        await client.connect()
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise delivery_error(exc, target) from exc
    finally:
        client.close()


def delivery_error(exc: Exception, target: SmtpTarget) -> DeliveryError:
    """Describe an aiosmtplib or socket failure in one line, and classify it."""
    where = target.redacted()
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        permanent = all(_is_permanent(r.code) for r in exc.recipients)
        return DeliveryError(f"{where} refused the recipients: {detail}", permanent=permanent)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return DeliveryError(
            f"{where} refused the message: {exc.code} {exc.message}",
            permanent=_is_permanent(exc.code),
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # Greeting, EHLO, AUTH or MAIL FROM: the server or our settings, not this message.
        return DeliveryError(f"{where} answered {exc.code} {exc.message}", permanent=False)
    return DeliveryError(f"{where}: {_describe_transport_failure(exc)}", permanent=False)


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def _describe_transport_failure(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
        return f"timed out ({exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc})"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return f"the server closed the connection ({exc})"
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return f"cannot connect ({exc})"
    return str(exc) or type(exc).__name__
