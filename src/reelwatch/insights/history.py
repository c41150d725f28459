"""The load over time: one sample a minute, recorded by the elected monitor, kept a week.

The admin charts read ``load_history``; the samples are small (one row a minute, about
10,000 rows a week), so reading hours of them is one index range.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from reelwatch.db.models import LoadSample
from reelwatch.insights.load import Load

SAMPLE_EVERY = timedelta(minutes=1)
KEEP = timedelta(days=7)


def record_sample(session: Session, load: Load, now: datetime) -> bool:
    """Store ``load`` if the last sample is a minute old; returns whether it did."""
    last = session.scalar(select(func.max(LoadSample.at)))
    if last is not None and now - last < SAMPLE_EVERY:
        return False
    nodes = [worker.resources for worker in load.workers if worker.alive and worker.resources]
    session.add(
        LoadSample(
            at=now,
            waiting_tasks=load.waiting_tasks,
            oldest_wait_s=load.oldest_wait_s,
            tasks_done_per_minute=load.tasks_done_per_minute,
            failure_ratio=load.service_failure_ratio,
            input_failure_ratio=load.input_failure_ratio,
            live_workers=load.live_workers,
            cpu_percent=_combine(fmean, nodes, "cpu_percent"),
            memory_percent=_combine(max, nodes, "memory_percent"),
            disk_free_percent=_combine(min, nodes, "disk_free_percent"),
        )
    )
    session.execute(delete(LoadSample).where(LoadSample.at < now - KEEP))
    return True


def load_history(session: Session, since: datetime) -> list[dict[str, Any]]:
    """The samples since ``since``, oldest first, as plain dicts (``at`` in ISO 8601 Z)."""
    samples = session.scalars(
        select(LoadSample).where(LoadSample.at >= since).order_by(LoadSample.at)
    )
    return [
        {
            "at": sample.at.isoformat() + "Z",
            "waiting_tasks": sample.waiting_tasks,
            "oldest_wait_s": sample.oldest_wait_s,
            "tasks_done_per_minute": sample.tasks_done_per_minute,
            "failure_ratio": sample.failure_ratio,
            "input_failure_ratio": sample.input_failure_ratio,
            "live_workers": sample.live_workers,
            "cpu_percent": sample.cpu_percent,
            "memory_percent": sample.memory_percent,
            "disk_free_percent": sample.disk_free_percent,
        }
        for sample in samples
    ]


def _combine(
    how: Callable[[list[float]], float],
    nodes: list[dict[str, float]],
    figure: str,
) -> float | None:
    values = [node[figure] for node in nodes if figure in node]
    return round(float(how(values)), 2) if values else None
