"""The maintainer on SQLite and PostgreSQL: of many candidates one leads and runs the
duties; when it dies another takes over after the lease; the leader rescues an expired
lease with no worker running the old rescue loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from instance import wait_until
from reelwatch.database import Database
from reelwatch.db.models import Event, Task
from reelwatch.engine import queue, states
from reelwatch.engine.leadership import lease_holder
from reelwatch.engine.maintenance import (
    MAINTENANCE_LEASE,
    RESCUE_INTERVAL_S,
    LeaseRescuer,
    Maintainer,
)
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow

TTL_S = 0.6


@dataclass
class CountingDuty:
    name: str = "counting"
    interval_s: float = 0.05
    runs: list[datetime] = field(default_factory=list)

    def run(self, now: datetime) -> int:
        self.runs.append(now)
        return 0


def candidate(db: Database, name: str) -> tuple[Maintainer, CountingDuty]:
    duty = CountingDuty()
    return Maintainer(db, [duty], name=name, ttl_s=TTL_S), duty


def leads(maintainer: Maintainer) -> bool:
    maintainer.tick()
    return maintainer.leading


def test_one_candidate_leads_and_another_takes_over_after_the_lease(db: Database) -> None:
    first, first_duty = candidate(db, "first")
    second, second_duty = candidate(db, "second")
    first.tick()
    for _ in range(3):
        second.tick()
    assert (first.leading, second.leading) == (True, False)
    assert first_duty.runs and not second_duty.runs, "only the leader runs duties"

    died = time.monotonic()  # the first stops ticking without resigning: killed
    wait_until(lambda: leads(second), timeout=5, interval=0.02)
    took = time.monotonic() - died
    assert TTL_S * 0.5 < took < TTL_S + TTL_S / 3 + 0.5, f"took over after {took:.2f} s"
    assert second_duty.runs and lease_holder(db, MAINTENANCE_LEASE) == "second"
    assert not leads(first), "a leader that comes back stands by"


def test_a_leader_that_stops_cleanly_hands_over_at_once(db: Database) -> None:
    first, _ = candidate(db, "first")
    second, _ = candidate(db, "second")
    stop = threading.Event()
    running = threading.Thread(target=first.run, args=(stop,))
    running.start()
    wait_until(lambda: lease_holder(db, MAINTENANCE_LEASE) == "first", timeout=5)
    stop.set()
    running.join(timeout=5)
    assert leads(second), "the lease was released, not left to run out"


def _never_called(ctx: TaskContext) -> dict[str, Any]:
    raise AssertionError("nobody runs tasks in this test")


LONE = register_workflow(WorkflowSpec("test_rescue_lone", (TaskSpec("only", _never_called),)))


def test_the_leader_rescues_an_expired_lease_without_any_worker(db: Database) -> None:
    with db.write() as session:
        workflow_id = queue.start_workflow(session, LONE).id
    ghost = queue.claim_next_task(db, "ghost", lease_s=0.5)  # then the ghost dies
    assert ghost is not None
    maintainer = Maintainer(db, [LeaseRescuer(db, backoff_scale=0)], name="monitor", ttl_s=TTL_S)
    stop = threading.Event()
    running = threading.Thread(target=maintainer.run, args=(stop,))
    running.start()
    try:
        claimed_at = time.monotonic()
        wait_until(lambda: _state(db, ghost.id) == states.QUEUED, timeout=10, interval=0.02)
        took = time.monotonic() - claimed_at
    finally:
        stop.set()
        running.join(timeout=5)
    assert took < 0.5 + RESCUE_INTERVAL_S + 0.5, f"rescued {took:.2f} s after the claim"
    with db.read() as session:
        kinds = list(session.scalars(select(Event.kind).where(Event.workflow_id == workflow_id)))
    assert kinds[-3:] == ["lease_expired", "task_failed", "retry_scheduled"]


def _state(db: Database, task_id: int) -> str:
    with db.read() as session:
        return str(session.get_one(Task, task_id).state)


def test_a_leader_without_duties_only_keeps_its_lease(db: Database) -> None:
    idle = Maintainer(db, [], name="idle", ttl_s=TTL_S)
    wait = idle.tick()
    assert idle.leading and 0 < wait <= TTL_S / 3
