"""Loads for the alert rules' tests: an idle service, to ``replace`` fields of."""

from __future__ import annotations

from reelwatch.insights.load import Load

IDLE = Load(
    tasks_by_state={},
    videos_by_status={},
    failed_videos_by_code={},
    waiting_tasks=0,
    oldest_wait_s=0.0,
    tasks_done_per_minute=0.0,
    outcomes_last_hour=0,
    outbox_pending=0,
)
