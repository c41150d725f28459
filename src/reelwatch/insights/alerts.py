"""Alert rules over the current load and the checks, and the alerts as they stand.

A rule whose condition holds is ``pending`` until it has held for the rule's ``for_s``
(no alert on a blip), then ``firing``; the elected monitor advances each rule's state and
tells the admins (``reelwatch.monitor.rules``). Besides the load rules below, every check
is a rule (``check_rules``): a component down for long enough alerts, and its recovery
says so. A silence (``silences``) mutes a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import AlertState, CheckState
from reelwatch.insights.checks import CRITICAL, WARNING
from reelwatch.insights.load import Load
from reelwatch.insights.silences import active_silences, silence_for

OK, PENDING, FIRING = "ok", "pending", "firing"


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str  # "warning", or "critical" for emergencies that need a person now
    for_s: float
    condition: Callable[[Load], bool]
    describe: Callable[[Load], str]  # the current value, in words
    action: str  # what to do


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "no_live_worker",
        "critical",
        30,
        lambda load: load.waiting_tasks > 0 and load.live_workers == 0,
        lambda load: f"{load.waiting_tasks} tasks wait and no worker is alive",
        "Restart needed: run `reelwatch up` (one machine) or start `reelwatch worker` on the "
        "processing machines; `reelwatch workers` shows the last heartbeats.",
    ),
    AlertRule(
        "queue_stalled",
        "critical",
        60,
        lambda load: load.oldest_wait_s > 600 and load.tasks_done_per_minute == 0,
        lambda load: (
            f"the oldest task has waited {load.oldest_wait_s / 60:.0f} min and "
            "nothing finished in 5 min"
        ),
        "Restart needed: workers are alive but not processing. Restart them "
        "(`reelwatch up`, or each `reelwatch worker`) and check `reelwatch events` of a "
        "waiting video.",
    ),
    AlertRule(
        "failure_ratio_high",
        "warning",
        300,
        # The service's failures only: users uploading broken files is not an outage.
        lambda load: load.outcomes_last_hour >= 4 and load.service_failure_ratio > 0.5,
        lambda load: (
            f"{load.service_failure_ratio:.0%} of {load.outcomes_last_hour} videos failed "
            "in the last hour for the service's fault"
        ),
        "Look at the service failure codes (`reelwatch queue`, /metrics "
        'reelwatch_failed_videos{cause="service"}): each points at a component.',
    ),
)


# What to do when a check alerts, by the check's kind (its name up to the first colon).
CHECK_ACTIONS = {
    "database": "Check that the database server runs and has disk space; every role "
    "reconnects by itself once it answers.",
    "storage": "Make the media folder (REELWATCH_HOME/media) writable again and free disk "
    "space (`reelwatch gc`, or delete old media); workers resume by themselves.",
    "smtp": "Check the SMTP server in REELWATCH_SMTP_URL; e-mails wait in the outbox and go "
    "out when it is back.",
    "ffmpeg": "Install ffmpeg on the machine running the monitor and the workers "
    "(`apt-get install ffmpeg`).",
    "ping_ffmpeg": "Processing does not work: look at `reelwatch workers` and the worker "
    "logs; restart the workers (`reelwatch up`, or each `reelwatch worker`).",
    "e2e_probe": "Users cannot get a video processed end to end: the detail names the step "
    "that failed; start with `reelwatch queue` and `reelwatch workers`.",
    "worker": "A worker stopped heartbeating: restart it (`reelwatch up` does by itself) or "
    "look at its machine; its tasks were handed to other workers.",
    "node": "Free disk space (delete old media), add memory or processing machines, or run "
    "fewer workers on that node (REELWATCH_WORKERS).",
}
# How long a check must be failing before it alerts (the probes have their own deadlines).
CHECK_ALERT_AFTER_S = {"node": 300.0, "e2e_probe": 0.0, "ping_ffmpeg": 0.0}
DEFAULT_CHECK_ALERT_AFTER_S = 60.0


def check_rules(session: Session) -> list[AlertRule]:
    """One rule per recorded check: it holds while the check is warning or critical."""
    return [_check_rule(check) for check in session.scalars(select(CheckState))]


def _check_rule(check: CheckState) -> AlertRule:
    kind = check.name.split(":", 1)[0]
    failing = check.state in (WARNING, CRITICAL)
    description = f"{check.name} is {check.state}: {check.detail}"
    return AlertRule(
        f"check:{check.name}",
        CRITICAL if check.state == CRITICAL else "warning",
        CHECK_ALERT_AFTER_S.get(kind, DEFAULT_CHECK_ALERT_AFTER_S),
        lambda _load: failing,
        lambda _load: description,
        CHECK_ACTIONS.get(kind, "See docs/monitoring.md."),
    )


def list_alerts(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Every rule not ok (pending or firing), with its silence if one covers it."""
    severity = {rule.name: rule.severity for rule in (*RULES, *check_rules(session))}
    silences = active_silences(session, now)
    query = select(AlertState).where(AlertState.state != OK).order_by(AlertState.since)
    alerts = []
    for state in session.scalars(query):
        silence = silence_for(silences, state.rule)
        alerts.append(
            {
                "rule": state.rule,
                "state": state.state,
                "severity": severity.get(state.rule, "warning"),
                "value": state.value,
                "since": state.since.isoformat() + "Z",
                "silenced_until": silence.ends_at.isoformat() + "Z" if silence else None,
            }
        )
    return alerts


def firing_alerts(session: Session, now: datetime) -> list[dict[str, Any]]:
    """The rules firing now, for the overview."""
    return [alert for alert in list_alerts(session, now) if alert["state"] == FIRING]
