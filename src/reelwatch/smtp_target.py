"""The SMTP server named by ``REELWATCH_SMTP_URL``: parsed and checked once, where the
settings are read (``reelwatch.config``), and used by the delivery in ``notify.smtp``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
STARTTLS_CHOICES: dict[str, bool] = {"require": True, "never": False}


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
