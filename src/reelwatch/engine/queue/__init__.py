"""The durable queue: start workflows, claim tasks with leases, record outcomes.

Every function here is one transaction that changes task or workflow state, writes the
checkpoint events for it and lets the workflow's observer update its subject, so the
timeline can never disagree with the state. Where each part lives:

- ``start``: ``start_workflow`` and the bulk ``start_workflows``;
- ``claims``: the hot path (claim, renew, complete, complete-and-claim);
- ``failing``: failures and retries, hand-backs, restarts, dependency wake-ups;
- ``events``: the checkpoints and the wake-up a transaction sends;
- ``workflows``: locks, fences, the graph, the declaration's observer and policy;
- ``engine.store``: what SQLite and PostgreSQL say differently.
"""

from reelwatch.engine.queue.capacity import spare_workers
from reelwatch.engine.queue.claims import (
    PROGRESS_MILESTONES,
    ClaimedTask,
    ClaimRequest,
    Completion,
    claim_next_task,
    claim_of,
    claim_tasks,
    complete_and_claim,
    complete_task,
    has_due_task,
    next_due_at,
    record_checkpoint,
    renew_lease,
)
from reelwatch.engine.queue.events import notify_new_work, record_event
from reelwatch.engine.queue.failing import (
    fail_task,
    release_task,
    restart_workflow,
    wake_dependency_waiters,
)
from reelwatch.engine.queue.start import (
    WorkflowStart,
    release_held_tasks,
    start_workflow,
    start_workflows,
)
from reelwatch.engine.queue.workflows import dependency_codes
from reelwatch.engine.store import NOTIFY_CHANNEL

__all__ = [
    "NOTIFY_CHANNEL",
    "PROGRESS_MILESTONES",
    "ClaimRequest",
    "ClaimedTask",
    "Completion",
    "WorkflowStart",
    "claim_next_task",
    "claim_of",
    "claim_tasks",
    "complete_and_claim",
    "complete_task",
    "dependency_codes",
    "fail_task",
    "has_due_task",
    "next_due_at",
    "notify_new_work",
    "record_checkpoint",
    "record_event",
    "release_held_tasks",
    "release_task",
    "renew_lease",
    "restart_workflow",
    "spare_workers",
    "start_workflow",
    "start_workflows",
    "wake_dependency_waiters",
]
