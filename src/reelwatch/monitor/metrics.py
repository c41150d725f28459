"""Prometheus metrics for ``GET /metrics``, computed from the database at scrape time.

Every API server answers with the same figures (they come from the shared database, not
from per-process counters), so a scrape through any load-balanced server is right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from reelwatch.monitor.load import Load


class LoadCollector(Collector):
    def __init__(self, read: Callable[[], Load]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        load = self.read()
        yield _labelled("reelwatch_tasks", "Tasks by state.", "state", load.tasks_by_state)
        yield _labelled("reelwatch_videos", "Videos by status.", "status", load.videos_by_status)
        yield _labelled(
            "reelwatch_failed_videos",
            "Failed videos by error code.",
            "code",
            load.failed_videos_by_code,
        )
        yield GaugeMetricFamily(
            "reelwatch_queue_waiting_tasks",
            "Tasks due and not yet claimed.",
            value=load.waiting_tasks,
        )
        yield GaugeMetricFamily(
            "reelwatch_queue_oldest_wait_seconds",
            "How long the oldest due task has waited.",
            value=load.oldest_wait_s,
        )
        yield GaugeMetricFamily(
            "reelwatch_tasks_done_per_minute",
            "Tasks succeeded per minute over the last 5 minutes.",
            value=load.tasks_done_per_minute,
        )
        yield GaugeMetricFamily(
            "reelwatch_failure_ratio",
            "Share of workflows ending failed over the last hour.",
            value=load.failure_ratio,
        )
        yield GaugeMetricFamily(
            "reelwatch_outbox_pending_messages",
            "Notifications not delivered yet.",
            value=load.outbox_pending,
        )
        yield GaugeMetricFamily(
            "reelwatch_workers_alive", "Workers heartbeating.", value=load.live_workers
        )


def render_metrics(read: Callable[[], Load]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoadCollector(read))
    return generate_latest(registry)


def _labelled(
    name: str, documentation: str, label: str, values: dict[str, int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
