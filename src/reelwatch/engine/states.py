"""Names of task and workflow states, shared by the engine, the API and the CLI."""

from typing import Final

# Task states. A task waits for its dependencies, is queued (possibly for a later
# run_at, when a retry is scheduled), runs under a lease, and ends in one of the last three.
WAITING: Final = "waiting"
QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
UNFINISHED: Final = frozenset({WAITING, QUEUED, RUNNING})

# Workflow states.
WF_RUNNING: Final = "running"
WF_SUCCEEDED: Final = "succeeded"
WF_FAILED: Final = "failed"
