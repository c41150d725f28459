"""Prometheus metrics for ``GET /metrics``, computed from the database at scrape time.

Every API server answers with the same figures (they come from the shared database, not
from per-process counters), so a scrape through any load-balanced server is right. Task
durations are a gauge histogram over the last hour, for the same reason: a histogram of
counters would need one process to own them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.database import utcnow
from reelwatch.db.models import Task
from reelwatch.engine import states
from reelwatch.failures import CAUSES, failure_cause
from reelwatch.insights.alerts import list_alerts
from reelwatch.insights.capacity import Capacity, estimate_capacity
from reelwatch.insights.checks import E2E_PROBE_CHECK as PROBE_CHECK
from reelwatch.insights.checks import SEVERITY, list_checks
from reelwatch.insights.load import Load, read_load

DURATION_WINDOW = timedelta(hours=1)
DURATION_BUCKETS_S = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class Snapshot:
    load: Load
    capacity: Capacity | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # Per task kind: the durations (seconds) of the tasks that succeeded in the window.
    durations: dict[str, list[float]] = field(default_factory=dict)


def read_snapshot(session: Session, *, lease_s: float) -> Snapshot:
    now = utcnow()
    load = read_load(session, lease_s=lease_s)
    return Snapshot(
        load=load,
        capacity=estimate_capacity(session, live_workers=load.live_workers),
        checks=list_checks(session, now),
        alerts=list_alerts(session, now),
        durations=_recent_durations(session, now - DURATION_WINDOW),
    )


def render_metrics(read: Callable[[], Snapshot]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(read))
    return generate_latest(registry)


class SnapshotCollector(Collector):
    def __init__(self, read: Callable[[], Snapshot]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        snapshot = self.read()
        yield from _load_metrics(snapshot.load)
        if snapshot.capacity is not None:
            yield from _autoscaling_metrics(snapshot.capacity)
        yield from _check_metrics(snapshot.checks)
        yield _alert_metric(snapshot.alerts)
        yield _duration_histogram(snapshot.durations)


def _load_metrics(load: Load) -> Iterator[Metric]:
    yield _labelled("reelwatch_tasks", "Tasks by state.", "state", load.tasks_by_state)
    yield _labelled("reelwatch_videos", "Videos by status.", "status", load.videos_by_status)
    failed = GaugeMetricFamily(
        "reelwatch_failed_videos",
        "Failed videos by error code and cause (input: the user's file; service: ours).",
        labels=["code", "cause"],
    )
    for code, count in sorted(load.failed_videos_by_code.items()):
        failed.add_metric([code, failure_cause(code)], count)
    yield failed
    ratio = GaugeMetricFamily(
        "reelwatch_failure_ratio",
        "Share of videos ending failed over the last hour, by cause "
        "(input: the user's file; service: ours).",
        labels=["cause"],
    )
    for cause in CAUSES:
        ratio.add_metric([cause], load.failure_ratio(cause))
    yield ratio
    gauges = {
        "reelwatch_queue_waiting_tasks": ("Tasks due and not yet claimed.", load.waiting_tasks),
        "reelwatch_queue_oldest_wait_seconds": (
            "How long the oldest due task has waited.",
            load.oldest_wait_s,
        ),
        "reelwatch_tasks_done_per_minute": (
            "Tasks succeeded per minute over the last 5 minutes.",
            load.tasks_done_per_minute,
        ),
        "reelwatch_outbox_pending_messages": (
            "Notifications not delivered yet.",
            load.outbox_pending,
        ),
        "reelwatch_outbox_parked_messages": (
            "Notifications that can never be delivered (see `reelwatch outbox --parked`).",
            load.outbox_parked,
        ),
        "reelwatch_workers_alive": ("Workers heartbeating.", load.live_workers),
    }
    for name, (documentation, value) in gauges.items():
        yield GaugeMetricFamily(name, documentation, value=value)


def _autoscaling_metrics(capacity: Capacity) -> Iterator[Metric]:
    """The signal for an external autoscaler: how long a new upload would wait, and how
    many workers would clear the backlog in ten minutes."""
    if not math.isinf(capacity.expected_wait_s):
        yield GaugeMetricFamily(
            "reelwatch_expected_wait_seconds",
            "How long a new upload would wait with the live workers (absent: none alive).",
            value=capacity.expected_wait_s,
        )
    yield GaugeMetricFamily(
        "reelwatch_workers_needed",
        "Workers that would clear the backlog within 10 minutes.",
        value=capacity.workers_needed,
    )


def _check_metrics(checks: list[dict[str, Any]]) -> Iterator[Metric]:
    severity = GaugeMetricFamily(
        "reelwatch_check_severity",
        "Each check's state: 0 ok, 1 unknown, 2 warning, 3 critical.",
        labels=["check"],
    )
    for check in checks:
        severity.add_metric([check["name"]], SEVERITY.get(check["state"], 1))
    yield severity
    probe = next((check for check in checks if check["name"] == PROBE_CHECK), None)
    if probe is not None and probe["value"] is not None:
        yield GaugeMetricFamily(
            "reelwatch_e2e_probe_seconds",
            "The last end-to-end probe: upload to ready, download and e-mail, in seconds.",
            value=probe["value"],
        )
        yield GaugeMetricFamily(
            "reelwatch_e2e_probe_success",
            "1 when the last end-to-end probe passed.",
            value=1 if probe["state"] == "ok" else 0,
        )


def _alert_metric(alerts: list[dict[str, Any]]) -> Metric:
    family = GaugeMetricFamily(
        "reelwatch_alerts",
        "Alert rules pending or firing (1), by rule, state and severity.",
        labels=["rule", "state", "severity"],
    )
    for alert in alerts:
        family.add_metric([alert["rule"], alert["state"], alert["severity"]], 1)
    return family


def _duration_histogram(durations: dict[str, list[float]]) -> Metric:
    family = GaugeHistogramMetricFamily(
        "reelwatch_task_duration_seconds",
        "Durations of the tasks that succeeded in the last hour, by kind.",
        labels=["kind"],
    )
    for kind, values in sorted(durations.items()):
        ordered = sorted(values)
        buckets = [(str(b), bisect.bisect_right(ordered, b)) for b in DURATION_BUCKETS_S]
        buckets.append(("+Inf", len(ordered)))
        family.add_metric([kind], buckets, gsum_value=sum(ordered))
    return family


def _recent_durations(session: Session, since: datetime) -> dict[str, list[float]]:
    rows = session.execute(
        select(Task.kind, Task.started_at, Task.finished_at).where(
            Task.state == states.SUCCEEDED, Task.finished_at >= since
        )
    )
    durations: dict[str, list[float]] = {}
    for kind, started, finished in rows:
        if started and finished:
            durations.setdefault(kind, []).append((finished - started).total_seconds())
    return durations


def _labelled(
    name: str, documentation: str, label: str, values: dict[str, int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
