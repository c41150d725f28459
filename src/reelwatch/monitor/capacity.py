"""The capacity estimate: what a minute of video costs to process, and what that means
for the backlog, the expected wait of a new upload and the workers the load needs.

Costs are measured, not configured: worker seconds spent on the tasks of the most
recently finished videos, per minute of their duration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import Task, Video
from reelwatch.videos.status import VideoStatus

SAMPLE_VIDEOS = 50
# Until something was measured: a guess of 30 worker-seconds per minute of video.
DEFAULT_COST_PER_MINUTE_S = 30.0
TARGET_WAIT_S = 600.0


@dataclass(frozen=True)
class Capacity:
    cost_per_video_minute_s: float  # worker-seconds to process one minute of video
    measured_videos: int
    backlog_video_minutes: float  # accepted and not finished
    expected_wait_s: float  # for a new upload, with the live workers
    workers_needed: int  # to clear the backlog within TARGET_WAIT_S


def estimate_capacity(session: Session, *, live_workers: int) -> Capacity:
    cost, measured = _measured_cost(session)
    backlog = _backlog_minutes(session)
    work_s = backlog * cost
    return Capacity(
        cost_per_video_minute_s=round(cost, 2),
        measured_videos=measured,
        backlog_video_minutes=round(backlog, 2),
        expected_wait_s=round(work_s / live_workers, 1) if live_workers else math.inf,
        workers_needed=math.ceil(work_s / TARGET_WAIT_S),
    )


def _measured_cost(session: Session) -> tuple[float, int]:
    recent = session.execute(
        select(Video.workflow_id, Video.duration_s)
        .where(Video.status == VideoStatus.READY, Video.duration_s > 0)
        .order_by(Video.updated_at.desc())
        .limit(SAMPLE_VIDEOS)
    ).all()
    if not recent:
        return DEFAULT_COST_PER_MINUTE_S, 0
    spans = session.execute(
        select(Task.started_at, Task.finished_at).where(
            Task.workflow_id.in_([workflow_id for workflow_id, _ in recent])
        )
    ).all()
    worker_s = sum((end - begin).total_seconds() for begin, end in spans if begin and end)
    minutes = sum(duration or 0.0 for _, duration in recent) / 60
    return worker_s / minutes, len(recent)


def _backlog_minutes(session: Session) -> float:
    """Minutes of video accepted and not finished; unprobed ones count as the average."""
    unfinished = (VideoStatus.QUEUED, VideoStatus.PROCESSING, VideoStatus.RETRYING)
    durations = list(session.scalars(select(Video.duration_s).where(Video.status.in_(unfinished))))
    known = [d for d in durations if d]
    average = (sum(known) / len(known)) if known else 60.0
    return sum(d if d else average for d in durations) / 60
