"""What the pages say about videos, events and failures, in words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.config import Settings
from reelwatch.db.models import Event, Task, User, Video
from reelwatch.failures import CATALOG, FailureCode, retry_refusal
from reelwatch.timewords import span_in_words
from reelwatch.videos import service
from reelwatch.videos.service import VideoNotFound
from reelwatch.videos.status import VideoStatus
from reelwatch.web.deps import PageError
from reelwatch.web.graph import render_svg, task_nodes

STATUS_EXPLANATIONS: dict[str, str] = {
    VideoStatus.QUEUED: "Saved; waiting for a worker to start on it.",
    VideoStatus.PROCESSING: "Being processed.",
    VideoStatus.RETRYING: "Saved; a step failed for a reason that may pass, and it will be "
    "retried automatically.",
    VideoStatus.READY: "Ready to play and download.",
    VideoStatus.FAILED: "Processing stopped; see why below.",
}

EVENT_WORDS = {
    "workflow_started": "Upload received and stored",
    "task_queued": "Step queued",
    "task_started": "Step started",
    "task_progress": "Step progress",
    "task_succeeded": "Step done",
    "task_failed": "Step failed",
    "retry_scheduled": "Retry scheduled",
    "lease_expired": "Worker stopped answering; step handed to another",
    "task_released": "Step handed back (worker shutting down)",
    "task_cancelled": "Step cancelled",
    "workflow_restarted": "Retry requested",
    "video_recovered": "Recorded again from its upload (the database had lost it)",
    "playable": "Playable: the first version can be watched while the others are made",
    "workflow_succeeded": "Processing finished",
    "workflow_failed": "Processing failed",
    "notification_queued": "Notification queued",
}


# What each step does, in the words a user reads (its task name is an internal word).
STEP_WORDS = {
    "probe": ("Checking the file", "Checked the file"),
    "transcode": ("Making the versions to play", "Made the versions to play"),
    "first": ("Making the first version to play", "Made the first version to play"),
    "ladder": ("Making the other versions", "Made the other versions"),
    "thumbnail": ("Making the thumbnail", "Made the thumbnail"),
    "finalize": ("Checking every file is in place", "Every file is in place"),
}
# Internal bookkeeping a user has no use for: shown to admins only.
QUIET_EVENTS = frozenset({"task_queued", "task_progress", "task_cancelled"})

NEXT_STEPS: dict[str, str] = {
    VideoStatus.QUEUED: "Next: a worker starts on it; this page follows along.",
    VideoStatus.PROCESSING: "Next: the remaining steps, then an e-mail when it is ready.",
    VideoStatus.RETRYING: "Next: it is tried again automatically; nothing to do.",
    VideoStatus.READY: "Nothing more to do: it is ready to watch.",
    VideoStatus.FAILED: "Next: see why above; retry it if offered, or upload a new file.",
}


@dataclass(frozen=True)
class Failure:
    code: str
    explanation: str
    detail: str | None
    recoverable: bool
    retry_refusal: str | None  # why the Retry button is not offered


def status_explanation(status: str) -> str:
    return STATUS_EXPLANATIONS.get(status, "")


def failure_of(video: Video) -> Failure | None:
    """The video's error in the words the failure catalog gives users."""
    if not video.error_code:
        return None
    try:
        kind = CATALOG[FailureCode(video.error_code)]
    except ValueError:
        explanation = "Something went wrong while processing this video."
    else:  # once failed for good, no automatic retry is coming
        failed = video.status == VideoStatus.FAILED
        explanation = kind.gave_up_message if failed else kind.user_message
    return Failure(
        video.error_code,
        explanation,
        video.error_message,
        bool(video.error_recoverable),
        retry_refusal(video.error_code),
    )


def event_words(kind: str) -> str:
    return EVENT_WORDS.get(kind, kind.replace("_", " "))


def step_words(task: str | None, *, done: bool = False) -> str:
    """A step's name in plain words ("Checking the file" for probe)."""
    words = STEP_WORDS.get(task or "")
    if words is None:
        return f"Step {task} {'done' if done else 'started'}"
    return words[1] if done else words[0]


def plain_words(event: Event) -> str | None:
    """What happened, for the video's owner: no paths, raw data or attempt numbers.
    None for the events only admins need."""
    if event.kind in QUIET_EVENTS:
        return None
    data = event.data or {}
    if event.kind == "task_started":
        return step_words(event.task)
    if event.kind == "task_succeeded":
        return step_words(event.task, done=True) + _step_result(event.task, data)
    if event.kind in ("task_failed", "retry_scheduled"):
        return _failure_words(event.kind, data)
    if event.kind == "workflow_succeeded":
        return "Ready to watch"
    if event.kind == "workflow_failed":
        return "Processing stopped: see why above"
    if event.kind == "notification_queued":
        return "E-mail on its way to you" if data.get("channel") != "alert" else None
    return event_words(event.kind)


def _step_result(task: str | None, data: dict[str, Any]) -> str:
    if task == "probe" and data.get("width"):
        return f": {data['width']}\u00d7{data.get('height')}, {_seconds(data.get('duration_s'))}"
    if task in ("transcode", "first", "ladder"):
        made = data.get("renditions") or []
        names = [str(r["rendition"]) for r in made if isinstance(r, dict) and r.get("rendition")]
        if not names and task == "ladder":
            return ": none needed, the video is no larger than the first"
        return f": {_and(names)}" if names else ""
    return ""


def _failure_words(kind: str, data: dict[str, Any]) -> str:
    try:
        reason = CATALOG[FailureCode(str(data.get("code")))].user_message
    except ValueError:
        reason = "Something went wrong."
    if kind == "task_failed":
        return f"A step failed. {reason}"
    delay = data.get("delay_s")
    when = f" in {span_in_words(float(delay))}" if isinstance(delay, int | float) else ""
    return f"Will try again{when}, automatically"


def _seconds(value: object) -> str:
    return f"{float(value):.0f} s" if isinstance(value, int | float) else "length unknown"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def next_step(status: str) -> str:
    return NEXT_STEPS.get(status, "")


def event_details(event: Event) -> list[tuple[str, str]]:
    """The event's data as short (name, value) pairs; nested values flattened one level."""
    pairs: list[tuple[str, str]] = []
    for key, value in (event.data or {}).items():
        if isinstance(value, dict):
            pairs += [(f"{key} {inner}", _short(v)) for inner, v in value.items()]
        else:
            pairs.append((key, _short(value)))
    return pairs


def _short(value: Any, limit: int = 300) -> str:
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    elif isinstance(value, list):
        text = ", ".join(_short(item, limit) for item in value)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def owner_emails(session: Session, videos: list[Video]) -> dict[int, str]:
    ids = {video.user_id for video in videos}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {user_id: email for user_id, email in rows}


def workflow_tasks(session: Session, video: Video) -> list[Task]:
    if video.workflow_id is None:
        return []
    query = select(Task).where(Task.workflow_id == video.workflow_id).order_by(Task.id)
    return list(session.scalars(query))


@dataclass(frozen=True)
class VideoDetail:
    video: Video
    owner: str
    failure: Failure | None
    events: list[Event]
    tasks: list[Task]
    graph: Markup | None

    def context(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "owner": self.owner,
            "failure": self.failure,
            "events": self.events,
            "tasks": self.tasks,
            "graph": self.graph,
        }


def player_settings(settings: Settings) -> dict[str, bool]:
    """What the player may offer: HLS (not in simulation, whose stand-in makes MP4
    copies only) and MP4 files (``REELWATCH_MP4_DOWNLOADS``)."""
    return {"hls": not settings.simulate, "mp4_downloads": settings.mp4_downloads}


def video_detail(session: Session, user: User, video_id: str) -> VideoDetail:
    """Everything the video page shows; 404 for a video the user may not see."""
    try:
        video = service.get_video(session, user, video_id)
    except VideoNotFound:
        raise PageError(404, "There is no such video, or it is not yours.") from None
    tasks = workflow_tasks(session, video)
    return VideoDetail(
        video=video,
        owner=session.get_one(User, video.user_id).email,
        failure=failure_of(video),
        events=service.video_events(session, user, video.id),
        tasks=tasks,
        graph=render_svg(task_nodes(tasks)) if tasks else None,
    )
