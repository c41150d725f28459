"""What can be done with videos, as plain functions the API and CLI call.

Accepting an upload is one transaction (video row, workflow, first tasks, event) after
the original is already durable in the store; everything after that is the engine's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, selectinload

from reelwatch.db.database import Database, utcnow
from reelwatch.db.models import Event, User, Video, Workflow
from reelwatch.engine import queue
from reelwatch.engine.spec import workflow_spec
from reelwatch.pipeline.workflow import VIDEO_WORKFLOW
from reelwatch.storage import MediaStore
from reelwatch.storage.local import IncomingFile
from reelwatch.videos.status import VideoStatus

MAX_TITLE_LENGTH = 200


class VideoNotFound(LookupError):
    pass


class NotRetryable(Exception):
    pass


@dataclass(frozen=True)
class Page:
    videos: list[Video]
    next_cursor: str | None


def accept_upload(
    db: Database,
    store: MediaStore,
    user: User,
    incoming: IncomingFile,
    *,
    filename: str,
    title: str | None,
    hold_until: datetime | None = None,
) -> Video:
    """Keep a finished upload durably, then record it and start its workflow (held
    until ``hold_until``, during maintenance).

    Fair share: the workflow's priority is the number of the user's videos still
    unfinished, so a burst from one user interleaves with everyone else's uploads
    instead of queueing ahead of them."""
    stored = incoming.finish()
    video_id = uuid.uuid4().hex
    now = utcnow()
    try:
        # Inside the try: a move that fails half way (its folder sync, say) must not
        # leave an original that no row points to.
        store.keep_original(incoming, video_id)
        with db.write() as session:
            video = Video(
                id=video_id,
                user_id=user.id,
                title=(title or filename).strip()[:MAX_TITLE_LENGTH] or "untitled",
                filename=filename[:500],
                size_bytes=stored.size_bytes,
                sha256=stored.sha256,
                status=VideoStatus.QUEUED,
                progress=0.0,
                attempts=0,
                has_thumbnail=False,
                renditions=[],
                created_at=now,
                updated_at=now,
            )
            session.add(video)
            session.flush()
            origin = {
                "upload": {
                    "filename": filename,
                    "size_bytes": stored.size_bytes,
                    "sha256": stored.sha256,
                }
            }
            workflow = queue.start_workflow(
                session,
                workflow_spec(VIDEO_WORKFLOW),
                subject_id=video_id,
                origin=origin,
                priority=_unfinished_videos(session, user.id),
                not_before=hold_until,
            )
            video.workflow_id = workflow.id
    except BaseException:
        store.delete_video(video_id)  # no row, so no 201: the file must not linger
        raise
    return video


def _unfinished_videos(session: Session, user_id: int) -> int:
    unfinished = (VideoStatus.QUEUED, VideoStatus.PROCESSING, VideoStatus.RETRYING)
    query = select(func.count()).where(Video.user_id == user_id, Video.status.in_(unfinished))
    return int(session.scalar(query) or 0)


def get_video(session: Session, user: User, video_id: str) -> Video:
    """A video the user may see; another user's video is 'not found', not 'forbidden'."""
    query = select(Video).where(Video.id == video_id).options(selectinload(Video.renditions))
    if not user.is_admin:
        query = query.where(Video.user_id == user.id)
    video = session.scalar(query)
    if video is None:
        raise VideoNotFound(video_id)
    return video


def list_videos(
    session: Session,
    user: User,
    *,
    status: VideoStatus | None = None,
    owner_email: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Newest first, paginated by key (created_at, id) so deep pages stay fast."""
    query = select(Video).options(selectinload(Video.renditions))
    if not user.is_admin:
        query = query.where(Video.user_id == user.id)
    elif owner_email:
        query = query.join(User, User.id == Video.user_id).where(User.email == owner_email)
    if status:
        query = query.where(Video.status == status)
    if cursor:
        created, _, last_id = cursor.partition("_")
        query = query.where(
            tuple_(Video.created_at, Video.id) < (datetime.fromisoformat(created), last_id)
        )
    rows = list(
        session.scalars(query.order_by(Video.created_at.desc(), Video.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = f"{rows[-1].created_at.isoformat()}_{rows[-1].id}"
    return Page(rows, next_cursor)


def video_events(session: Session, user: User, video_id: str) -> list[Event]:
    get_video(session, user, video_id)
    return list(
        session.scalars(select(Event).where(Event.subject_id == video_id).order_by(Event.id))
    )


def retry_video(db: Database, user: User, video_id: str) -> None:
    """Re-run a failed video from the task that failed (owner or admin)."""
    with db.read() as session:
        video = get_video(session, user, video_id)
        status, workflow_id = video.status, video.workflow_id
    if status != VideoStatus.FAILED or workflow_id is None:
        raise NotRetryable(f"only failed videos can be retried; this one is {status}")
    if not queue.restart_workflow(db, workflow_id, requested_by=user.email):
        raise NotRetryable("the video is no longer failed")


def retry_failed_with_code(db: Database, admin: User, code: str) -> list[str]:
    """Re-run every failed video whose error is ``code`` (after an outage, say)."""
    if not admin.is_admin:
        raise PermissionError("only admins can retry videos in bulk")
    with db.read() as session:
        failed = session.execute(
            select(Video.id, Video.workflow_id).where(
                Video.status == VideoStatus.FAILED, Video.error_code == code
            )
        ).all()
    return [
        video_id
        for video_id, workflow_id in failed
        if workflow_id is not None
        and queue.restart_workflow(db, workflow_id, requested_by=admin.email)
    ]


def delete_video(db: Database, store: MediaStore, user: User, video_id: str) -> None:
    """Remove the rows first, then the files: a worker still on one of its tasks loses
    its lease with the rows and stops, and nothing points at a missing file."""
    with db.write() as session:
        video = get_video(session, user, video_id)
        workflow_id = video.workflow_id
        session.delete(video)
        session.flush()
        if workflow_id is not None:
            workflow = session.get(Workflow, workflow_id)
            if workflow is not None:
                session.delete(workflow)
    store.delete_video(video_id)


def video_as_dict(video: Video, public_url: str) -> dict[str, Any]:
    """The API's representation of a video (SPEC §4)."""
    base = f"{public_url}/api/v1/videos/{video.id}"
    error = None
    if video.error_code:
        error = {
            "code": video.error_code,
            "message": video.error_message,
            "recoverable": bool(video.error_recoverable),
        }
    return {
        "id": video.id,
        "status": video.status,
        "progress": video.progress,
        "title": video.title,
        "filename": video.filename,
        "size_bytes": video.size_bytes,
        "sha256": video.sha256,
        "duration_s": video.duration_s,
        "width": video.width,
        "height": video.height,
        "attempts": video.attempts,
        "error": error,
        "next_retry_at": iso(video.next_retry_at),
        "renditions": [
            {
                "name": r.name,
                "width": r.width,
                "height": r.height,
                "size_bytes": r.size_bytes,
                "url": f"{base}/renditions/{r.name}",
            }
            for r in video.renditions
        ],
        "thumbnail_url": f"{base}/thumbnail" if video.has_thumbnail else None,
        "created_at": iso(video.created_at),
        "updated_at": iso(video.updated_at),
    }


def event_as_dict(event: Event) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "task": event.task,
        "attempt": event.attempt,
        "worker": event.worker,
        "data": event.data,
    }


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None
