"""Customer activity: per user, what they uploaded, what failed, what they retried, and
when they last uploaded; the admin's view of who is using the service and how it goes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from reelwatch.db.models import User, Video, Workflow
from reelwatch.videos.service import iso
from reelwatch.videos.status import VideoStatus


def customer_activity(
    session: Session, *, exclude_email: str, limit: int = 100
) -> list[dict[str, Any]]:
    """The ``limit`` most recently active users (the probe user left out)."""
    failed = func.sum(case((Video.status == VideoStatus.FAILED, 1), else_=0))
    # A workflow's run counts its manual restarts; automatic retries are attempts.
    retries = func.sum(func.coalesce(Workflow.run, 1) - 1)
    last_upload = func.max(Video.created_at)
    query = (
        select(User.email, func.count(Video.id), failed, retries, last_upload)
        .join(Video, Video.user_id == User.id)
        .outerjoin(Workflow, Workflow.id == Video.workflow_id)
        .where(User.email != exclude_email)
        .group_by(User.id, User.email)
        .order_by(last_upload.desc())
        .limit(limit)
    )
    return [
        {
            "email": email,
            "uploads": int(uploads),
            "failed": int(failed_count or 0),
            "retries": int(retry_count or 0),
            "last_seen": iso(last),
        }
        for email, uploads, failed_count, retry_count, last in session.execute(query)
    ]
