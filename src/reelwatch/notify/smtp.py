"""Sending e-mail over SMTP: the target parsed from ``REELWATCH_SMTP_URL``, and delivery.

Every failure becomes a ``DeliveryError`` that says whether retrying later can help, so
the dispatcher keeps temporary failures in the outbox and records permanent rejections.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
STARTTLS_CHOICES: dict[str, bool] = {"require": True, "never": False}


class DeliveryError(Exception):
    """A message could not be handed to the SMTP server.

    ``permanent`` is true only when the server refused the message or recipient for
    good; everything else (the server away, timeouts, TLS trouble, 4xx) may work later.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # smtps:// : implicit TLS
    start_tls: bool | None = None  # smtp:// : None = use STARTTLS when the server offers it

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        """Parse ``smtp://user:pass@host:port`` or ``smtps://…``, optionally ``?starttls=…``."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if "://" not in url:
            raise ValueError("SMTP URL must look like smtp://user:pass@host:port (or smtps://)")
        if scheme not in DEFAULT_PORTS:
            # Only the scheme is quoted back: the rest may hold a password.
            raise ValueError(f"SMTP URL must start with smtp:// or smtps://, not {scheme}://")
        if not parts.hostname:
            raise ValueError("SMTP URL has no host name (smtp://host:port)")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("SMTP URL must not have a path: smtp://user:pass@host:port")
        username, password = _credentials(parts.username, parts.password)
        return cls(
            host=parts.hostname,
            port=_port(parts.netloc, DEFAULT_PORTS[scheme]),
            username=username,
            password=password,
            use_tls=scheme == "smtps",
            start_tls=_start_tls(parts.query, implicit_tls=scheme == "smtps"),
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiosmtplib's ``send`` and ``SMTP``."""
        return {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "use_tls": self.use_tls,
            "start_tls": self.start_tls,
        }

    def redacted(self) -> str:
        """The target as a URL for logs and error messages: the password is never shown."""
        scheme = "smtps" if self.use_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = {True: "?starttls=require", False: "?starttls=never", None: ""}[self.start_tls]
        return f"{scheme}://{user}{host}:{self.port}{query}"


def _port(netloc: str, default: int) -> int:
    # urlsplit's own .port raises a message that does not say which setting is wrong.
    host_port = netloc.rpartition("@")[2]
    text = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    _, colon, port = text.rpartition(":")
    if not colon or port == "":
        return default
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"SMTP URL port must be a number from 1 to 65535, not {port!r}")
    return int(port)


def _credentials(username: str | None, password: str | None) -> tuple[str | None, str | None]:
    user = unquote(username) if username else None
    secret = unquote(password) if password is not None else None
    if secret is not None and not user:
        raise ValueError("SMTP URL has a password but no user name (smtp://user:pass@host)")
    if user and not secret:
        raise ValueError("SMTP URL has a user name but no password (smtp://user:pass@host)")
    return user, secret


def _start_tls(query: str, *, implicit_tls: bool) -> bool | None:
    options = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(options) - {"starttls"})
    if unknown:
        raise ValueError(f"SMTP URL has an unknown option {unknown[0]!r} (only starttls)")
    if "starttls" not in options:
        return None
    value = options["starttls"][-1].lower()
    if value not in STARTTLS_CHOICES:
        raise ValueError(f"SMTP URL starttls must be require or never, not {value!r}")
    if implicit_tls:
        raise ValueError("SMTP URL: starttls applies to smtp://, smtps:// is TLS already")
    return STARTTLS_CHOICES[value]


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
