"""A worker: claims tasks, runs their handlers under a heartbeat, records the results.

- ``loop``: the ``Worker`` (claim → run → record, batching, shutdown);
- ``executor``: runs one task's handler and turns what it raises into a failure;
- ``heartbeat``: the one thread renewing the running task's lease;
- ``presence``: the worker's row in the workers table (beat, drain, resources);
- ``config``: ``WorkerConfig`` and the loop's tuning constants.
"""

from reelwatch.engine.worker.config import (
    BATCH_HOLD_S,
    BATCH_SIZE,
    EXIT_STALLED,
    PREFLIGHT_INTERVAL_S,
    PRESENCE_INTERVAL_S,
    QUICK_TASK_S,
    WorkerConfig,
)
from reelwatch.engine.worker.executor import RunningTask
from reelwatch.engine.worker.loop import Worker
from reelwatch.engine.worker.presence import mark_worker_lost, request_drain

__all__ = [
    "BATCH_HOLD_S",
    "BATCH_SIZE",
    "EXIT_STALLED",
    "PREFLIGHT_INTERVAL_S",
    "PRESENCE_INTERVAL_S",
    "QUICK_TASK_S",
    "RunningTask",
    "Worker",
    "WorkerConfig",
    "mark_worker_lost",
    "request_drain",
]
