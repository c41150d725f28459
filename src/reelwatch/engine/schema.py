"""The engine's tables: workflows, their tasks, the events that audit them, the workers'
presence and the leadership leases.

The engine owns ``Base``: an application that keeps its own tables in the same database
derives its models from it, so one ``MetaData`` (one Alembic history) holds them all. A
standalone user creates the engine's tables with ``create_all``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reelwatch.database import Database

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=False),
    }


class Workflow(Base):
    """One run of a declared workflow (``engine.spec.WorkflowSpec``) for a subject."""

    __tablename__ = "workflows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # 1, then +1 per manual restart: each run has its own outcome (and its own e-mail).
    run: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Task(Base):
    """One node of a workflow: the durable queue entry that workers claim and lease."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("workflow_id", "name"),
        # The claim query walks this partial index in priority order.
        Index(
            "ix_tasks_claimable",
            "queue",
            "priority",
            "run_at",
            "id",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_tasks_leases",
            "lease_expires_at",
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    # The graph instance is self-describing, so it outlives changes to the declaration.
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    depends_on: Mapped[list[str]] = mapped_column(JSON, default=list)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    timeout_s: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(32), default="default")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts made before the latest manual retry: the retry budget counts from here.
    attempt_floor: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(128))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Event(Base):
    """A checkpoint: written in the same transaction as the state change it records."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_subject", "subject_id", "id"),
        Index("ix_events_kind_at", "kind", "at"),  # throughput and failure ratio windows
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    workflow_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    # The workflow's subject (a video id), so a video's timeline is one index range.
    subject_id: Mapped[str | None] = mapped_column(String(64))
    task: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int | None]
    worker: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WorkerRecord(Base):
    """A worker process's presence: its heartbeat and what it is running."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    queues: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    current_task_id: Mapped[int | None] = mapped_column(BigId)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    # The node's resources at the last presence beat (psutil), for the monitor.
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # Set by `reelwatch workers drain`: the worker finishes its task, claims no more, exits.
    drain_requested_at: Mapped[datetime | None]


class Leadership(Base):
    """Who holds a singleton duty (the monitor's), until when: a lease in the database."""

    __tablename__ = "leadership"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]


ENGINE_TABLES = tuple(
    model.__table__ for model in (Workflow, Task, Event, WorkerRecord, Leadership)
)


def create_all(db: Database) -> None:
    """Create the engine's tables that do not exist yet (a standalone engine; reelwatch
    itself creates them with its Alembic migrations)."""
    Base.metadata.create_all(db.engine, tables=list(ENGINE_TABLES))  # type: ignore[arg-type]
