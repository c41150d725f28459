"""The admin overview: everything an admin looks at first, as one JSON-ready dict.

``GET /api/v1/admin/overview``, ``reelwatch queue`` and the admin dashboard all render
this one dict, so they cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from reelwatch.config import Settings
from reelwatch.database import utcnow
from reelwatch.insights.activity import customer_activity
from reelwatch.insights.alerts import list_alerts
from reelwatch.insights.capacity import estimate_capacity
from reelwatch.insights.checks import check_history, list_checks
from reelwatch.insights.load import read_load
from reelwatch.insights.silences import active_silences, silence_as_dict

CHECK_HISTORY_SHOWN = timedelta(days=1)


def build_overview(session: Session, settings: Settings) -> dict[str, Any]:
    now = utcnow()
    load = read_load(session, lease_s=settings.lease_seconds)
    capacity = estimate_capacity(session, live_workers=load.live_workers)
    return {
        "queue": {
            "waiting_tasks": load.waiting_tasks,
            "oldest_wait_s": load.oldest_wait_s,
            "tasks_by_state": load.tasks_by_state,
        },
        "throughput": {"tasks_per_minute": load.tasks_done_per_minute},
        "videos": {
            "by_status": load.videos_by_status,
            "failed_by_code": load.failed_videos_by_code,
            "failed_by_cause": load.failed_videos_by_cause,
        },
        # The service's failures (what to fix) apart from the users' broken files.
        "failure_ratio": load.service_failure_ratio,
        "input_failure_ratio": load.input_failure_ratio,
        "failures_last_hour": {
            "outcomes": load.outcomes_last_hour,
            "by_cause": load.failures_last_hour,
        },
        "outbox_pending": load.outbox_pending,
        "parked_messages": load.outbox_parked,
        "workers": [asdict(worker) for worker in load.workers],
        "live_workers": load.live_workers,
        "alerts": list_alerts(session, now),
        "silences": [silence_as_dict(s) for s in active_silences(session, now)],
        "checks": list_checks(session, now),
        "check_history": check_history(session, now - CHECK_HISTORY_SHOWN),
        "activity": customer_activity(session, exclude_email=settings.probe_email),
        "capacity": _finite(asdict(capacity)),
    }


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no infinity: an unbounded wait (no live worker) is null.
    return {k: None if isinstance(v, float) and math.isinf(v) else v for k, v in values.items()}
