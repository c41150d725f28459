"""Configuration from ``REELWATCH_*`` environment variables and an optional TOML file.

Environment wins over ``reelwatch.toml`` (or the file named by ``REELWATCH_CONFIG``),
which wins over the embedded defaults. Invalid settings stop the program with one line
that names the variable, through ``load_settings``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from email.utils import getaddresses
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from reelwatch.inputs import InvalidInput, parse_address, shown
from reelwatch.smtp_target import SmtpTarget

# The fastest frame rate a camera records (slow-motion phones); sets the default frame limit.
MAX_FRAME_RATE = 240

Environment = Literal["development", "staging", "beta", "production"]
# Where user e-mail may go only to REELWATCH_MAIL_ALLOWLIST (and the admins).
RESTRICTED_MAIL_ENVIRONMENTS = ("staging", "beta")
# Passwords production refuses in a URL: the placeholders of the docs and examples and
# the usual defaults; and shorter than this.
PLACEHOLDER_SECRETS = frozenset(
    {"pass", "password", "secret", "changeme", "change-me", "reelwatch", "postgres", "admin"}
)
MIN_SECRET_LENGTH = 12


# S3's rules for bucket names (and DNS's, for virtual-host addressing).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]{0,127}")


@dataclass(frozen=True)
class BucketUrl:
    bucket: str
    prefix: str  # "" or "a/b", no slash at either end

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_bucket_url(url: str) -> BucketUrl:
    """``s3://BUCKET/PREFIX`` checked: a bucket name S3 accepts, a prefix of plain names."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("must be s3://BUCKET/PREFIX (the endpoint is AWS_ENDPOINT_URL)")
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError("must be s3://BUCKET/PREFIX, without user, port, query or fragment")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or re.fullmatch(r"[\d.]+", bucket):
        raise ValueError(
            f"{shown(bucket)} is not a bucket name: 3 to 63 lower-case letters, digits, "
            "dots and hyphens"
        )
    pieces = [piece for piece in parts.path.split("/") if piece]
    if len(parts.path) > 512 or not all(_PREFIX_PART.fullmatch(p) for p in pieces):
        raise ValueError("the prefix must be names of letters, digits, '_', '-', '.', '='")
    if any(piece.strip(".") == "" for piece in pieces):
        raise ValueError("the prefix must not hold '.' or '..'")
    return BucketUrl(bucket, "/".join(pieces))


class ConfigError(Exception):
    """A setting is invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELWATCH_", extra="ignore", frozen=True)

    home: Path = Path("./var")
    env: Environment = "development"
    database_url: str | None = None
    bind: str = "127.0.0.1:8000"
    workers: int = Field(2, ge=0, le=64)
    smtp_url: str | None = None
    mail_from: str = "reelwatch@localhost"
    alert_urls: str = ""
    public_url: str | None = None
    max_upload_mb: int = Field(2048, ge=1)
    lease_seconds: float = Field(30, gt=0)
    delay_notice_minutes: float = Field(10, ge=0)

    # Media limits and ffmpeg guard rails (beyond SPEC §2, documented in README).
    max_duration_s: float = Field(4 * 3600, gt=0)
    max_pixels: int = Field(7680 * 4320, gt=0)
    # Frames to decode (rate x duration); 0: MAX_FRAME_RATE a second of max_duration_s.
    max_frames: int = Field(0, ge=0)
    renditions: str = "480,720"
    # Each rendition is always an HLS variant; also a progressive MP4 download if true.
    mp4_downloads: bool = True
    # Routes task kinds to worker queues ("tags"): "transcode=gpu,thumbnail=cpu" sends
    # transcodes to `reelwatch worker --queues gpu`; unnamed kinds go to "default".
    task_queues: str = ""
    ffmpeg_stall_seconds: float = Field(120, gt=0)
    ffmpeg_timeout_seconds: float = Field(4 * 3600, gt=0)
    ffmpeg_threads: int = Field(0, ge=0)
    ffmpeg_memory_mb: int = Field(4096, ge=256)
    # Multiplies every retry backoff; tests and drills shorten waits with it.
    retry_backoff_scale: float = Field(1.0, ge=0)

    # The monitor (docs/monitoring.md): its round, the functional "ping ffmpeg" through
    # the queue, and the end-to-end probe through the public API (0 turns either off).
    monitor_interval_seconds: float = Field(5, gt=0)
    ping_interval_seconds: float = Field(60, ge=0)
    probe_interval_seconds: float = Field(300, ge=0)
    probe_timeout_seconds: float = Field(600, gt=0)
    probe_email: str = "probe@reelwatch.invalid"
    # Each monitor alerts straight through REELWATCH_ALERT_URLS when the database has
    # been unreachable this long (the outbox lives in it).
    database_outage_alert_seconds: float = Field(30, ge=0)

    # Admission control (docs/notices.md): an upload that would wait longer than this
    # is refused (503 + Retry-After) or accepted with a warning; 0 turns it off.
    admission_max_wait_seconds: float = Field(3600, ge=0)
    admission_policy: Literal["refuse", "warn"] = "warn"
    # `reelwatch gc` deletes finished videos older than this (0: keep them for ever).
    retention_days: int = Field(0, ge=0)
    # ...and keeps this long a folder holding an original and its upload manifest but
    # no video row: a row lost after its 201, for `reelwatch recover` (docs/operations.md).
    orphan_retention_days: int = Field(7, ge=1)
    # The engine's maintenance (docs/architecture.md, "Maintenance") deletes finished
    # internal workflows (pings) with their tasks and events, leftover probe videos and
    # the delivered messages of deleted videos this long after (0: keep them for ever).
    prune_finished_hours: float = Field(24, ge=0)
    # Who gets the upfront e-mail of a maintenance window scheduled with --notify.
    notify_active_days: int = Field(30, ge=1)

    # Throttles (docs/web.md), counted in the database so that every server shares them;
    # 0 turns one off. Failed sign-ins per account and per client IP in a window...
    login_failures_per_account: int = Field(10, ge=0)
    login_failures_per_ip: int = Field(30, ge=0)
    login_window_seconds: float = Field(300, gt=0)
    # ...and "tell me when it is back" subscriptions per client IP an hour, per address a day.
    status_subscriptions_per_ip: int = Field(5, ge=0)
    status_subscriptions_per_address: int = Field(3, ge=0)
    # Proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips): the
    # client IP the throttles count. List nginx's address when it runs on another host.
    forwarded_allow_ips: str = "127.0.0.1,::1"

    # The HTTP server's guard rails (docs/web.md, "Hardening"): /docs and /openapi.json
    # (unset: on except in production), how long an idle keep-alive connection and a
    # stalled request body are kept.
    api_docs: bool | None = None
    # Processes of `reelwatch server` sharing its port (unset: one per core this process
    # may run on); one Python process answers from one core (docs/performance.md §5).
    server_processes: int | None = Field(None, ge=1, le=64)
    keep_alive_seconds: int = Field(5, ge=1)
    body_timeout_seconds: float = Field(60, gt=0)

    # Logs (docs/operations.md, "Logs"): human-readable lines, or one JSON object a line
    # with the request, task and video ids. Production refuses debug.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Who user e-mail may go to (addresses and @domain entries, comma-separated); the
    # admins always. Unset: everyone, except in staging and beta (the admins only).
    mail_allowlist: str = ""

    # Simulation mode (docs/operations.md, reelwatch.simulation): the transcoder is a
    # stand-in that runs no ffmpeg; its work takes SIMULATE_SPEED seconds per second of
    # video, and it fails with each code of SIMULATE_FAILURES ("code:rate,...") at its rate.
    # Media on S3-compatible object storage (docs/scale-out.md, "Object storage"):
    # s3://BUCKET/PREFIX; unset, they stay under REELWATCH_HOME/media. The endpoint, keys
    # and region are the standard AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... variables.
    storage_url: str | None = None
    s3_addressing: Literal["path", "virtual", "auto"] = "auto"
    # Downloads: a redirect to a presigned URL (the bucket serves the bytes), or proxied.
    s3_downloads: Literal["redirect", "proxy"] = "redirect"
    s3_link_seconds: int = Field(300, ge=10, le=7 * 86400)
    # Multipart part size: what an upload or a publish holds in memory at once.
    s3_part_mb: int = Field(8, ge=5, le=512)
    simulate: bool = False
    simulate_speed: float = Field(0.25, ge=0, le=100)
    simulate_failures: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("REELWATCH_CONFIG", "reelwatch.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_path))

    @field_validator("bind")
    @classmethod
    def _bind_is_host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8000")
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage_url_is_a_bucket(cls, value: str | None) -> str | None:
        if value:
            parse_bucket_url(value)
        return value or None

    @field_validator("renditions")
    @classmethod
    def _renditions_are_heights(cls, value: str) -> str:
        heights = [part.strip() for part in value.split(",") if part.strip()]
        if not heights or not all(h.isdigit() and 16 <= int(h) <= 4320 for h in heights):
            raise ValueError("must be comma-separated heights in pixels, e.g. 480,720")
        return value

    @field_validator("task_queues")
    @classmethod
    def _task_queues_are_pairs(cls, value: str) -> str:
        pairs = [part.strip() for part in value.split(",") if part.strip()]
        if not all(re.fullmatch(r"[a-z_]+=[a-z0-9_-]+", pair) for pair in pairs):
            raise ValueError("must be kind=queue pairs, e.g. transcode=gpu,thumbnail=cpu")
        return value

    @field_validator("simulate_failures")
    @classmethod
    def _simulate_failures_are_rates(cls, value: str) -> str:
        from reelwatch.simulation import EXAMPLE, parse_failure_rates

        try:
            parse_failure_rates(value)
        except ValueError as exc:
            raise ValueError(f"{exc}; expected code:rate pairs, e.g. {EXAMPLE}") from None
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, value: str | None) -> str | None:
        if value:
            SmtpTarget.from_url(value)  # its ValueError names the problem
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from_is_one_sender(cls, value: str) -> str:
        # Every message carries it: one that cannot be built would park them all.
        senders = getaddresses([value])
        try:
            if len(senders) != 1 or not value.isprintable():
                raise InvalidInput(value)
            parse_address(senders[0][1])
        except InvalidInput:
            raise ValueError(
                "must be one sender, e.g. reelwatch@example.com or Name <reelwatch@example.com>"
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("mail_allowlist")
    @classmethod
    def _mail_allowlist_is_addresses(cls, value: str) -> str:
        for entry in _entries(value):
            try:
                parse_address(f"x{entry}" if entry.startswith("@") else entry)
            except InvalidInput:
                raise ValueError(
                    f"{shown(entry)!r} is neither an address nor an @domain, "
                    "e.g. qa@example.com,@example.org"
                ) from None
        return value

    @model_validator(mode="after")
    def _production_refuses_unsafe_defaults(self) -> Settings:
        """Production starts only with settings safe to face the public: each refusal
        is one line naming the variable (``load_settings``)."""
        if self.env != "production":
            return self
        for name in ("smtp_url", "public_url"):
            if not getattr(self, name):
                raise ValueError(f"{name}: must be set when REELWATCH_ENV=production")
        if not self.https:
            raise ValueError(
                "public_url: must be an https:// URL when REELWATCH_ENV=production (sign-in "
                "cookies and API tokens travel in clear over http; a proxy terminating TLS "
                "still serves the public at https://)"
            )
        for name in ("smtp_url", "database_url"):
            if _weak_password(getattr(self, name)):
                raise ValueError(
                    f"{name}: its password is a placeholder or shorter than "
                    f"{MIN_SECRET_LENGTH} characters; set a real one when REELWATCH_ENV=production"
                )
        if self.log_level == "debug":
            raise ValueError(
                "log_level: debug is refused when REELWATCH_ENV=production (debug logs "
                "may carry addresses and message contents); use info"
            )
        return self

    @model_validator(mode="after")
    def _production_is_never_simulated(self) -> Settings:
        if self.simulate and self.env == "production":
            raise ValueError("simulate: must be off when REELWATCH_ENV=production")
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'reelwatch.db').resolve()}"

    @cached_property
    def bucket(self) -> BucketUrl | None:
        """Where the media are kept when in a bucket (REELWATCH_STORAGE_URL), else None."""
        return parse_bucket_url(self.storage_url) if self.storage_url else None

    @cached_property
    def media_root(self) -> Path:
        return (self.home / "media").resolve()

    @cached_property
    def mail_folder(self) -> Path:
        """Where the built-in mail sink keeps what it receives."""
        return (self.home / "mail").resolve()

    @cached_property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.bind}").rstrip("/")

    @property
    def api_docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.env != "production"

    @property
    def https(self) -> bool:
        return self.resolved_public_url.startswith("https://")

    def startup_warnings(self) -> list[str]:
        """What is allowed but unsafe, for the log at start and ``reelwatch doctor`` (an
        http public URL in production is refused, by the validation above)."""
        if self.env == "production" and self.api_docs:
            return [
                "REELWATCH_API_DOCS is on in production: /docs and /openapi.json describe "
                "every route to anyone"
            ]
        return []

    @cached_property
    def mail_allowlist_entries(self) -> frozenset[str] | None:
        """Lower-cased addresses and ``@domain`` entries user e-mail may go to (besides
        the admins); None: anyone."""
        entries = frozenset(entry.lower() for entry in _entries(self.mail_allowlist))
        if entries or self.env in RESTRICTED_MAIL_ENVIRONMENTS:
            return entries
        return None

    def queue_for(self, kind: str) -> str:
        """The queue that tasks of ``kind`` are routed to (``REELWATCH_TASK_QUEUES``)."""
        pairs = (part.strip().split("=") for part in self.task_queues.split(",") if part.strip())
        return dict(pairs).get(kind, "default")

    @cached_property
    def rendition_heights(self) -> tuple[int, ...]:
        return tuple(sorted({int(h) for h in self.renditions.split(",") if h.strip()}))

    @property
    def frame_limit(self) -> int:
        """``max_frames``, or by default 240 frames a second for ``max_duration_s``."""
        return self.max_frames or round(MAX_FRAME_RATE * self.max_duration_s)

    @property
    def prune_retention(self) -> timedelta | None:
        """How long finished engine rows are kept; None keeps them for ever."""
        hours = self.prune_finished_hours
        return timedelta(hours=hours) if hours else None

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def resolved_server_processes(self) -> int:
        return self.server_processes or len(os.sched_getaffinity(0))

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bind.rpartition(":")
        return host.strip("[]"), int(port)


def _entries(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _weak_password(url: str | None) -> bool:
    """A URL's password (if it has one) is a known placeholder or short."""
    try:
        password = urlsplit(url).password if url else None
    except ValueError:
        return False  # the URL's own validator names what is wrong with it
    if password is None:
        return False  # no password: a local relay, or PostgreSQL's peer authentication
    password = unquote(password)
    return password.lower() in PLACEHOLDER_SECRETS or len(password) < MIN_SECRET_LENGTH


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into a one-line ``ConfigError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe_first_error(exc)) from None


def _describe_first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = error["msg"].removeprefix("Value error, ")
    if error["loc"]:
        name = str(error["loc"][0])
    else:  # model-level validators name the field at the start of their message
        name, _, message = message.partition(": ")
    return f"REELWATCH_{name.upper()}: {message}"
