"""Customer activity: per user, what they uploaded, what failed, what they retried, and
when they last uploaded; the admin's view of who is using the service and how it goes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from reelwatch.db.models import User, Video, Workflow
from reelwatch.videos.service import iso
from reelwatch.videos.status import VideoStatus

# failures.failure_cause in SQL: every input_* code is the file's fault.
_INPUT_CODE = Video.error_code.like("input\\_%", escape="\\")


def customer_activity(
    session: Session, *, exclude_email: str, limit: int = 100
) -> list[dict[str, Any]]:
    """The ``limit`` most recently active users (the probe user left out)."""
    failed = func.sum(case((Video.status == VideoStatus.FAILED, 1), else_=0))
    # Of those, the ones whose file was the problem (failures.failure_cause).
    input_failed = func.sum(
        case((and_(Video.status == VideoStatus.FAILED, _INPUT_CODE), 1), else_=0)
    )
    # A workflow's run counts its manual restarts; automatic retries are attempts.
    retries = func.sum(func.coalesce(Workflow.run, 1) - 1)
    last_upload = func.max(Video.created_at)
    query = (
        select(User.email, func.count(Video.id), failed, input_failed, retries, last_upload)
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
            "failed_input": int(input_count or 0),
            "failed_service": int(failed_count or 0) - int(input_count or 0),
            "retries": int(retry_count or 0),
            "last_seen": iso(last),
        }
        for email, uploads, failed_count, input_count, retry_count, last in session.execute(query)
    ]
