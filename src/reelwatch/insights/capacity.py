"""The capacity estimate: what a minute of video costs to process, and what that means
for the backlog, the expected wait of a new upload and the workers the load needs.

Costs are measured, not configured: worker seconds (wall time a worker was busy), CPU
seconds (the workers' and their ffmpeg's) and bytes written, on the tasks of the most
recently finished videos, per minute of their duration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reelwatch.db.models import Event, Rendition, Task, Video
from reelwatch.videos.status import VideoStatus

SAMPLE_VIDEOS = 50
# Until something was measured: a guess of 30 worker-seconds per minute of video.
DEFAULT_COST_PER_MINUTE_S = 30.0
TARGET_WAIT_S = 600.0


@dataclass(frozen=True)
class Capacity:
    cost_per_video_minute_s: float  # worker-seconds to process one minute of video
    cpu_per_video_minute_s: float | None  # CPU seconds for the same (None: not measured)
    bytes_per_video_minute: float | None  # rendition bytes written
    measured_videos: int
    backlog_video_minutes: float  # accepted and not finished
    expected_wait_s: float  # for a new upload, with the live workers
    workers_needed: int  # to clear the backlog within TARGET_WAIT_S


def estimate_capacity(session: Session, *, live_workers: int) -> Capacity:
    costs = _measured_costs(session)
    cost = costs.worker_s_per_minute
    backlog = _backlog_minutes(session)
    work_s = backlog * cost
    return Capacity(
        cost_per_video_minute_s=round(cost, 2),
        cpu_per_video_minute_s=_rounded(costs.cpu_s_per_minute),
        bytes_per_video_minute=_rounded(costs.bytes_per_minute),
        measured_videos=costs.videos,
        backlog_video_minutes=round(backlog, 2),
        expected_wait_s=round(work_s / live_workers, 1) if live_workers else math.inf,
        workers_needed=math.ceil(work_s / TARGET_WAIT_S),
    )


@dataclass(frozen=True)
class _Costs:
    worker_s_per_minute: float
    cpu_s_per_minute: float | None
    bytes_per_minute: float | None
    videos: int


def _measured_costs(session: Session) -> _Costs:
    recent = session.execute(
        select(Video.id, Video.workflow_id, Video.duration_s)
        .where(Video.status == VideoStatus.READY, Video.duration_s > 0)
        .order_by(Video.updated_at.desc())
        .limit(SAMPLE_VIDEOS)
    ).all()
    if not recent:
        return _Costs(DEFAULT_COST_PER_MINUTE_S, None, None, 0)
    workflow_ids = [workflow_id for _, workflow_id, _ in recent]
    minutes = sum(duration or 0.0 for _, _, duration in recent) / 60
    spans = session.execute(
        select(Task.started_at, Task.finished_at).where(Task.workflow_id.in_(workflow_ids))
    ).all()
    worker_s = sum((end - begin).total_seconds() for begin, end in spans if begin and end)
    cpu = [
        data.get("cpu_s")
        for data in session.scalars(
            select(Event.data).where(
                Event.workflow_id.in_(workflow_ids), Event.kind == "task_succeeded"
            )
        )
    ]
    written = session.scalar(
        select(func.sum(Rendition.size_bytes)).where(
            Rendition.video_id.in_([video_id for video_id, _, _ in recent])
        )
    )
    return _Costs(
        worker_s_per_minute=worker_s / minutes,
        # Tasks recorded before CPU was measured have none: no figure rather than a low one.
        cpu_s_per_minute=sum(cpu) / minutes if cpu and None not in cpu else None,
        bytes_per_minute=float(written or 0) / minutes,  # PostgreSQL sums bigint as numeric
        videos=len(recent),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _backlog_minutes(session: Session) -> float:
    """Minutes of video accepted and not finished; unprobed ones count as the average."""
    unfinished = (VideoStatus.QUEUED, VideoStatus.PROCESSING, VideoStatus.RETRYING)
    durations = list(session.scalars(select(Video.duration_s).where(Video.status.in_(unfinished))))
    known = [d for d in durations if d]
    average = (sum(known) / len(known)) if known else 60.0
    return sum(d if d else average for d in durations) / 60
