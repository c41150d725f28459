"""A worker's settings, with the defaults that tune its loop."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

PROGRESS_FLUSH_INTERVAL_S = 1.0
PRESENCE_INTERVAL_S = 5.0
MAX_IDLE_WAIT_S = 1.0
PREFLIGHT_RETRY_S = 2.0
# While the dependencies are up, they are checked at most this often (a media store
# check writes and fsyncs a file: per task, it would cost more than a no-op task).
PREFLIGHT_INTERVAL_S = 1.0
# A task kind whose last run took less than this costs less than its claim's round trip:
# a worker then claims up to BATCH_SIZE of them at once (about BATCH_HOLD_S of work) and
# records their outcomes together, holding a batch's successes at most BATCH_HOLD_S.
QUICK_TASK_S = 0.01
BATCH_SIZE = 50
BATCH_HOLD_S = 0.5
EXIT_STALLED = 75  # EX_TEMPFAIL: `reelwatch up` (or systemd) starts a fresh process


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerConfig:
    """``lease_s``: how long a claim holds a task without a heartbeat; ``queues``: where
    it claims from; ``backoff_scale``: the retry delays' multiplier; ``batch_size``: the
    most quick tasks claimed at once; ``presence_interval_s``: how often the workers
    row is beaten."""

    lease_s: float
    queues: tuple[str, ...] = ("default",)
    name: str | None = None  # default: host:pid:random
    backoff_scale: float = 1.0
    batch_size: int = BATCH_SIZE
    presence_interval_s: float = PRESENCE_INTERVAL_S
