"""Keeps each video's row in step with its workflow, inside the engine's transactions.

The video's status, progress, error and files are derived here and nowhere else, so
what the API shows always matches the engine's state and the timeline. This is also
the seam where outcome notifications join the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.config import Settings
from reelwatch.database import utcnow
from reelwatch.db.models import Event, Rendition, User, Video
from reelwatch.engine import queue, states
from reelwatch.engine.failures import TaskFailure
from reelwatch.engine.spec import TaskView, WorkflowObserver, WorkflowView
from reelwatch.failures import DEPENDENCY_CODES, catalog_failure
from reelwatch.notify import messages, outbox
from reelwatch.videos.pipeline.tasks import PLAYABLE, rendition_outputs
from reelwatch.videos.status import VideoStatus


class VideoObserver(WorkflowObserver):
    def __init__(self, settings: Settings) -> None:
        self.public_url = settings.resolved_public_url
        self.delay_notice_s = settings.delay_notice_minutes * 60

    def task_started(self, session: Session, workflow: WorkflowView, task: TaskView) -> None:
        video = _video(session, workflow)
        if video is None:
            return
        if video.status in (VideoStatus.QUEUED, VideoStatus.RETRYING):
            video.status = VideoStatus.PROCESSING
            _clear_error(video)
        video.attempts = max(video.attempts, task.attempt)
        video.updated_at = utcnow()

    def task_progressed(
        self, session: Session, workflow: WorkflowView, tasks: Sequence[TaskView]
    ) -> None:
        video = _video(session, workflow)
        if video is not None:
            video.progress = round(weighted_progress(tasks), 4)
            video.updated_at = utcnow()

    def task_checkpointed(
        self,
        session: Session,
        workflow: WorkflowView,
        task: TaskView,
        kind: str,
        data: dict[str, Any],
    ) -> None:
        """``playable`` (the engine has put it on the timeline): the first segments of a
        rendition are out, so its variant plays while the rest is encoded."""
        video = _video(session, workflow)
        if video is not None and kind == PLAYABLE and not video.renditions:
            video.streaming_rendition = data["renditions"][0]
            video.updated_at = utcnow()

    def task_succeeded(
        self, session: Session, workflow: WorkflowView, task: TaskView, output: dict[str, Any]
    ) -> None:
        video = _video(session, workflow)
        if video is None:
            return
        if task.kind == "probe":
            video.duration_s = output["duration_s"]
            video.width, video.height = output["width"], output["height"]
        elif task.kind == "transcode":
            made = rendition_outputs(output)
            names = [produced["rendition"] for produced in made]
            if made and not video.renditions and video.streaming_rendition is None:
                # The first rendition in place: the video plays while the rest is made.
                queue.record_event(
                    session, PLAYABLE, workflow, task=task, data={"renditions": names}
                )
            if video.streaming_rendition in names:
                video.streaming_rendition = None  # made: listed among the renditions
            # One row per rendition the task made (its part of the ladder, the whole
            # ladder, or one rung of an old workflow).
            for produced in made:
                video.renditions.append(
                    Rendition(
                        name=produced["rendition"],
                        width=produced["width"],
                        height=produced["height"],
                        size_bytes=produced["size_bytes"],
                    )
                )
        elif task.kind == "thumbnail":
            video.has_thumbnail = True
        video.updated_at = utcnow()

    def retry_scheduled(
        self, session: Session, workflow: WorkflowView, task: TaskView, failure: TaskFailure
    ) -> None:
        video = _video(session, workflow)
        if video is None:
            return
        failure = catalog_failure(failure)
        video.status = VideoStatus.RETRYING
        _set_error(video, failure)
        if _streamed_by(session, workflow, task):
            _stop_streaming(video)
        video.next_retry_at = task.run_at
        video.updated_at = utcnow()
        delay_s = (task.run_at - video.updated_at).total_seconds()
        if delay_s > self.delay_notice_s or failure.code in DEPENDENCY_CODES:
            owner = session.get_one(User, video.user_id)
            email = messages.delayed_email(
                video, owner, failure.kind, task.run_at, public_url=self.public_url
            )
            _notify(session, workflow, email)

    def workflow_succeeded(self, session: Session, workflow: WorkflowView) -> None:
        video = _video(session, workflow)
        if video is not None:
            video.status = VideoStatus.READY
            video.progress = 1.0
            _clear_error(video)
            video.updated_at = utcnow()
            owner = session.get_one(User, video.user_id)
            email = messages.ready_email(video, owner, run=workflow.run, public_url=self.public_url)
            _notify(session, workflow, email)

    def workflow_failed(
        self, session: Session, workflow: WorkflowView, failure: TaskFailure
    ) -> None:
        video = _video(session, workflow)
        if video is not None:
            failure = catalog_failure(failure)
            video.status = VideoStatus.FAILED
            _set_error(video, failure)
            _stop_streaming(video)
            video.next_retry_at = None
            video.updated_at = utcnow()
            owner = session.get_one(User, video.user_id)
            _notify(
                session,
                workflow,
                messages.failed_email(
                    video, owner, failure, run=workflow.run, public_url=self.public_url
                ),
            )
            alert = messages.failure_alert(
                video, owner, failure, run=workflow.run, public_url=self.public_url
            )
            _notify(session, workflow, alert)

    def workflow_restarted(self, session: Session, workflow: WorkflowView) -> None:
        video = _video(session, workflow)
        if video is not None:
            video.status = VideoStatus.QUEUED
            _clear_error(video)
            _stop_streaming(video)
            video.updated_at = utcnow()


def weighted_progress(tasks: Sequence[TaskView]) -> float:
    """The workflow's progress: each task's progress weighted by its expected cost."""
    total = sum(t.weight for t in tasks) or 1.0
    done = sum(t.weight * (1.0 if t.state == states.SUCCEEDED else t.progress) for t in tasks)
    return done / total


def _notify(session: Session, workflow: WorkflowView, message: outbox.Message) -> None:
    """Queue a message in this transaction, and put it on the timeline (once: the
    outbox key makes a repeat a no-op)."""
    if outbox.enqueue(session, message):
        queue.record_event(
            session,
            "notification_queued",
            workflow,
            data={"channel": message.channel, "to": message.recipient, "subject": message.subject},
        )


def _video(session: Session, workflow: WorkflowView) -> Video | None:
    # None once the video was deleted while one of its tasks was still finishing.
    return session.get(Video, workflow.subject_id) if workflow.subject_id else None


def _set_error(video: Video, failure: TaskFailure) -> None:
    known = catalog_failure(failure)
    video.error_code = known.code.value
    video.error_message = known.message
    video.error_recoverable = known.recoverable


def _streamed_by(session: Session, workflow: WorkflowView, task: TaskView) -> bool:
    """Whether ``task`` is the one whose rendition plays while it is made: the last
    ``playable`` of the workflow is its."""
    last = session.scalar(
        select(Event.task)
        .where(Event.workflow_id == workflow.id, Event.kind == PLAYABLE)
        .order_by(Event.id.desc())
        .limit(1)
    )
    return last == task.name


def _stop_streaming(video: Video) -> None:
    # A failed attempt removes what it had made: that variant no longer plays.
    video.streaming_rendition = None


def _clear_error(video: Video) -> None:
    video.error_code = video.error_message = video.error_recoverable = None
    video.next_retry_at = None
