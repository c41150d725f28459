"""The functional check "ping ffmpeg": a tiny encode through the real queue and a worker.

Each round the elected monitor looks at the latest ping: done → the check passes (its
value is the time from enqueue to done), failed or older than the timeout → critical.
A new ping starts when the latest one finished and the interval has passed. Finished
pings are deleted, with their tasks and events, by the engine's pruner.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import Task, Workflow
from reelwatch.engine import states
from reelwatch.engine.queue import start_workflow
from reelwatch.engine.spec import WorkflowSpec
from reelwatch.insights.checks import CRITICAL, OK, CheckResult
from reelwatch.videos.pipeline import PING_WORKFLOW


def ping_ffmpeg(
    session: Session,
    spec: WorkflowSpec,
    now: datetime,
    *,
    interval_s: float,
    timeout_s: float,
) -> CheckResult | None:
    """The check's result from the latest ping (None: still under way, nothing new)."""
    latest = session.scalars(
        select(Workflow).where(Workflow.name == PING_WORKFLOW).order_by(Workflow.id.desc())
    ).first()
    if latest is None or _due_again(latest, now, interval_s):
        start_workflow(session, spec, origin={"by": "monitor"})
    if latest is None:
        return None
    return _result_of(session, latest, now, timeout_s)


def _due_again(ping: Workflow, now: datetime, interval_s: float) -> bool:
    return ping.finished_at is not None and now - ping.created_at >= timedelta(seconds=interval_s)


def _result_of(
    session: Session, ping: Workflow, now: datetime, timeout_s: float
) -> CheckResult | None:
    age_s = ((ping.finished_at or now) - ping.created_at).total_seconds()
    if ping.state == states.WF_SUCCEEDED:
        return CheckResult(OK, f"a worker encoded a test clip {age_s:.1f} s after enqueue", age_s)
    if ping.state == states.WF_FAILED:
        task = session.scalars(select(Task).where(Task.workflow_id == ping.id)).first()
        error = f"{task.error_code}: {task.error_message}" if task else "no task"
        return CheckResult(CRITICAL, f"the test encode failed ({error})", age_s)
    if age_s > timeout_s:
        return CheckResult(
            CRITICAL, f"the test encode enqueued {age_s:.0f} s ago is not done", age_s
        )
    return None  # under way: the check keeps its last result
