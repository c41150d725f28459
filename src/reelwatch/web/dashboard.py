"""What the admin dashboard shows: the monitor's overview (the same dict as
``GET /api/v1/admin/overview``), what each busy worker is on, and the alerts sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.config import Settings
from reelwatch.db.models import OutboxMessage, Task, Workflow
from reelwatch.insights.overview import build_overview
from reelwatch.notify.outbox import ALERT

HISTORY_ROWS = 20


def dashboard_data(session: Session, settings: Settings) -> dict[str, Any]:
    overview = build_overview(session, settings)
    return {
        "overview": overview,
        "current_tasks": current_tasks(session, overview.get("workers", [])),
        "alert_history": alert_history(session),
    }


def current_tasks(session: Session, workers: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """What each busy worker is on: task name and video id, by task id."""
    ids = [w["current_task_id"] for w in workers if w.get("current_task_id") is not None]
    if not ids:
        return {}
    rows = session.execute(
        select(Task.id, Task.name, Workflow.subject_id)
        .join(Workflow, Workflow.id == Task.workflow_id)
        .where(Task.id.in_(ids))
    )
    return {task_id: {"task": name, "video": subject or ""} for task_id, name, subject in rows}


def alert_history(session: Session) -> list[OutboxMessage]:
    """The latest admin alerts, as sent (or waiting to be sent): firing, repeats, resolved."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.channel == ALERT)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(HISTORY_ROWS)
    )
    return list(session.scalars(query))
