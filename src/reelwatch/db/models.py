"""The tables: users and their videos, notices, the monitor's state, the outbox; and,
imported from the engine (``engine.schema``, whose ``Base`` these derive from), the
workflows, tasks, events, workers and leadership leases.

Timestamps are naive UTC everywhere (``utcnow``) so SQLite and PostgreSQL compare them
the same way; the API adds the ``Z`` when it renders them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reelwatch.engine.schema import (
    Base,
    BigId,
    Event,
    Leadership,
    Task,
    WorkerRecord,
    Workflow,
)

__all__ = [
    "AlertState",
    "Base",
    "BigId",
    "CheckState",
    "CheckTransition",
    "Event",
    "Leadership",
    "LoadSample",
    "Notice",
    "OutboxMessage",
    "Rendition",
    "Silence",
    "StatusSubscription",
    "Task",
    "ThrottleCounter",
    "User",
    "Video",
    "WebSession",
    "WorkerRecord",
    "Workflow",
]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    # scrypt, for the web sign-in; None: the user signs in with their API token only.
    password_hash: Mapped[str | None] = mapped_column(String(255))


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = (
        Index("ix_videos_user_created", "user_id", "created_at", "id"),
        # A user's list filtered on a status (or an admin's, by owner and status).
        Index("ix_videos_user_status_created", "user_id", "status", "created_at", "id"),
        Index("ix_videos_status_created", "status", "created_at", "id"),
        Index("ix_videos_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    duration_s: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None]
    height: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_recoverable: Mapped[bool | None]
    next_retry_at: Mapped[datetime | None]
    has_thumbnail: Mapped[bool] = mapped_column(Boolean, default=False)
    # The rendition whose HLS variant plays while it is still being made (its segments
    # are published as they are encoded); None once it is made, or when none does.
    streaming_rendition: Mapped[str | None] = mapped_column(String(16))
    workflow_id: Mapped[int | None] = mapped_column(ForeignKey("workflows.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    renditions: Mapped[list[Rendition]] = relationship(
        order_by="Rendition.height", cascade="all, delete-orphan", passive_deletes=True
    )


class Rendition(Base):
    __tablename__ = "renditions"
    __table_args__ = (UniqueConstraint("video_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(16))
    width: Mapped[int]
    height: Mapped[int]
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class OutboxMessage(Base):
    """A notification to deliver, written in the transaction of the change it reports.

    ``key`` is the idempotency key (one per video and outcome): a second message with
    the same key is never written, and the e-mail's Message-ID is derived from it.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # Alerts with the same group are delivered together as one digest.
    group_key: Mapped[str | None] = mapped_column(String(100))
    video_id: Mapped[str | None] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class AlertState(Base):
    """Where one alert rule stands: ok, pending (condition true, not for long enough yet)
    or firing; ``since`` is when the current state began."""

    __tablename__ = "alert_states"

    rule: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    value: Mapped[str] = mapped_column(Text, default="")
    notified_at: Mapped[datetime | None]


class CheckState(Base):
    """Where one check stands now: ok, warning, critical or unknown, since when, and what
    its last run found (the value or the error, in words)."""

    __tablename__ = "checks"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    checked_at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")
    # A figure of the last run where the check has one (a latency, a free percentage).
    value: Mapped[float | None] = mapped_column(Float)


class CheckTransition(Base):
    """A check's history: one row each time its state changes (uptime is read from it)."""

    __tablename__ = "check_transitions"
    __table_args__ = (Index("ix_check_transitions_name_at", "name", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")


class Silence(Base):
    """An admin's decision to hear nothing from one alert rule until ``ends_at``: the rule
    still changes state (and shows as silenced), but sends no message."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_rule_ends", "rule", "ends_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(320))
    comment: Mapped[str] = mapped_column(Text, default="")


class LoadSample(Base):
    """The load once a minute, written by the elected monitor: the admin charts' series."""

    __tablename__ = "load_samples"

    at: Mapped[datetime] = mapped_column(primary_key=True)
    waiting_tasks: Mapped[int]
    oldest_wait_s: Mapped[float] = mapped_column(Float)
    tasks_done_per_minute: Mapped[float] = mapped_column(Float)
    # The service's failures; the users' broken files apart (null before revision 0010,
    # whose older samples counted both in failure_ratio).
    failure_ratio: Mapped[float] = mapped_column(Float)
    input_failure_ratio: Mapped[float | None] = mapped_column(Float)
    live_workers: Mapped[int]
    # Across the live workers' nodes: mean CPU, highest memory use, least free disk.
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    disk_free_percent: Mapped[float | None] = mapped_column(Float)


class Notice(Base):
    """What users are told upfront: a maintenance window, or an incident.

    ``uploads`` says what an upload gets while the notice is active: ``automatic``
    (accepted and saved; a maintenance window holds processing until its end),
    ``retrying`` (refused: try again after the end) or ``postponing`` (refused: the
    uploader is told by e-mail when the service is back)."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_open", "closed_at", "starts_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # maintenance, incident
    message: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]  # an incident lasts until it is resolved
    uploads: Mapped[str] = mapped_column(String(16))
    # "manual", or the alert rule that opened it (and will resolve it).
    source: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    # Cancelled (maintenance) or resolved (incident); None while it stands.
    closed_at: Mapped[datetime | None]
    # The components an incident affects (``notices.components`` keys, comma-separated);
    # empty: the service as a whole.
    components: Mapped[str] = mapped_column(String(200), default="", server_default="")


class NoticeUpdate(Base):
    """One step of an incident's timeline: what was found, what is being done."""

    __tablename__ = "notice_updates"
    __table_args__ = (Index("ix_notice_updates_notice", "notice_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigId, ForeignKey("notices.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    message: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(320))


class StatusSubscription(Base):
    """A "tell me when it is back" request: one e-mail once the service is operational."""

    __tablename__ = "status_subscriptions"
    __table_args__ = (Index("ix_status_subscriptions_waiting", "notified_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    notified_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is kept
    here, so a copied database opens no session. Signing out, a new password or a new
    API token revokes the row; the cookie alone proves nothing without it."""

    __tablename__ = "web_sessions"
    __table_args__ = (
        Index("ix_web_sessions_user", "user_id"),
        Index("ix_web_sessions_expires", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]  # updated at most once a minute
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ThrottleCounter(Base):
    """Attempts of one kind from one subject (an account, a client IP, an address) in a
    window that starts with the first attempt; shared by every server on the database."""

    __tablename__ = "throttle_counters"
    __table_args__ = (Index("ix_throttle_counters_ends", "ends_at"),)

    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # scope:digest
    hits: Mapped[int]
    ends_at: Mapped[datetime]
