"""Failures split by cause: the users' broken files (``input``) apart from the service's
own (``service``), in every read model, /metrics and the alert, on both databases."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from typing import Any

from loads import IDLE
from reelwatch.accounts import create_user
from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import Video
from reelwatch.engine import queue, states
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.insights.activity import customer_activity
from reelwatch.insights.alerts import RULES
from reelwatch.insights.history import load_history, record_sample
from reelwatch.insights.load import read_load
from reelwatch.insights.metrics import read_snapshot, render_metrics
from reelwatch.insights.overview import build_overview


def _noop(ctx: TaskContext) -> dict[str, Any]:
    return {}


ONE_STEP = register_workflow(WorkflowSpec("test_failure_causes", (TaskSpec("only", _noop),)))
FAILURES = (
    [FailureCode.INPUT_INVALID] * 2
    + [FailureCode.INPUT_NO_VIDEO]
    + [
        FailureCode.DISK_FULL,
        FailureCode.UNKNOWN,
    ]
)
[FAILURE_RATIO_HIGH] = [rule for rule in RULES if rule.name == "failure_ratio_high"]


def fail_video(db: Database, user_id: int, number: int, code: FailureCode) -> None:
    """A video whose processing failed with ``code``, through the real queue."""
    video_id = f"v{number:031d}"
    now = utcnow()
    with db.write() as session:
        workflow = queue.start_workflow(session, ONE_STEP, subject_id=video_id)
        session.add(
            Video(
                id=video_id,
                user_id=user_id,
                title="clip",
                filename="clip.mp4",
                size_bytes=1,
                sha256="0" * 64,
                status="failed",
                error_code=code.value,
                workflow_id=workflow.id,
                created_at=now,
                updated_at=now,
            )
        )
    outcome: str | None = states.QUEUED
    while outcome == states.QUEUED:  # a service failure is retried: spend its attempts
        claimed = queue.claim_next_task(db, "w1", lease_s=30)
        assert claimed is not None
        outcome = queue.fail_task(db, claimed, TaskFailure(code, "failed"), backoff_scale=0)
    assert outcome == states.FAILED


def test_every_figure_tells_input_failures_from_service_failures(
    db: Database, settings: Settings
) -> None:
    with db.write() as session:
        user_id = create_user(session, "carol@example.com").id
    for number, code in enumerate(FAILURES):
        fail_video(db, user_id, number, code)
    with db.write() as session:
        load = read_load(session, lease_s=3)
        record_sample(session, load, utcnow())
    assert load.failures_last_hour == {"service": 2, "input": 3}
    assert load.outcomes_last_hour == 5 and load.service_failure_ratio == 0.4
    assert load.failed_videos_by_cause == {"service": 2, "input": 3}
    with db.read() as session:
        overview = build_overview(session, settings)
        [sample] = load_history(session, utcnow().replace(year=2000))
        [carol] = customer_activity(session, exclude_email="probe@example.com")
        metrics = render_metrics(lambda: read_snapshot(session, lease_s=3)).decode()
    assert overview["failure_ratio"] == 0.4 and overview["input_failure_ratio"] == 0.6
    assert overview["videos"]["failed_by_cause"] == {"service": 2, "input": 3}
    assert overview["failures_last_hour"]["by_cause"] == {"service": 2, "input": 3}
    assert (sample["failure_ratio"], sample["input_failure_ratio"]) == (0.4, 0.6)
    assert (carol["failed"], carol["failed_service"], carol["failed_input"]) == (5, 2, 3)
    assert 'reelwatch_failure_ratio{cause="service"} 0.4' in metrics
    assert 'reelwatch_failure_ratio{cause="input"} 0.6' in metrics
    assert 'reelwatch_failed_videos{cause="input",code="input_invalid"} 2.0' in metrics
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_failure_ratio_high_holds_for_service_failures_only() -> None:
    bad_files = replace(IDLE, outcomes_last_hour=5, failures_last_hour={"input": 5})
    assert not FAILURE_RATIO_HIGH.condition(bad_files)
    outage = replace(IDLE, outcomes_last_hour=5, failures_last_hour={"service": 3, "input": 2})
    assert FAILURE_RATIO_HIGH.condition(outage)
    assert "60% of 5 videos failed" in FAILURE_RATIO_HIGH.describe(outage)
