"""The worker's one heartbeat thread: keeps the running task's lease alive, its progress
visible and its time limit enforced.

One thread for the worker's life, not one per task: starting and joining a thread cost
more than a short task. When the lease is lost (the task was rescued, cancelled or
deleted) it sets the task's ``cancelled`` event so the handler stops its ffmpeg.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reelwatch.engine import queue
from reelwatch.engine.worker.config import PROGRESS_FLUSH_INTERVAL_S
from reelwatch.engine.worker.executor import RunningTask

log = logging.getLogger(__name__)

# A handler still running this long after its time limit ignores cancellation (stuck in
# a call that cannot be interrupted): the worker process is recycled.
STALL_GRACE_S = 30.0


@dataclass
class _Watch:
    """The heartbeat's view of one running task."""

    running: RunningTask
    shutdown: threading.Event
    started_at: float = field(default_factory=time.monotonic)
    renewed_at: float = field(default_factory=time.monotonic)
    flushed_progress: float = 0.0
    over: bool = False  # the lease was lost or the task stalled: nothing more to do


class Heartbeat(threading.Thread):
    def __init__(self, *, lease_s: float, on_stalled: Callable[[RunningTask], None]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.lease_s = lease_s
        self.on_stalled = on_stalled
        self.closed = threading.Event()
        self._watch: _Watch | None = None

    def watch(self, running: RunningTask, shutdown: threading.Event) -> None:
        self._watch = _Watch(running, shutdown)

    def unwatch(self) -> None:
        self._watch = None

    def run(self) -> None:
        tick = min(PROGRESS_FLUSH_INTERVAL_S, self.lease_s / 3)
        while not self.closed.wait(tick):
            watch = self._watch
            if watch is not None and not watch.over:
                self._check(watch)

    def _check(self, watch: _Watch) -> None:
        running = watch.running
        if watch.shutdown.is_set():
            running.cancel("shutdown")
        overtime_s = time.monotonic() - watch.started_at - running.claim.timeout_s
        if overtime_s > 0:
            running.cancel("timeout")
        if overtime_s > STALL_GRACE_S:
            watch.over = True
            self.on_stalled(running)
            return
        try:
            self._beat(watch)
        except Exception:  # the database may be briefly away; the lease has slack
            log.exception("heartbeat for task %s failed", running.claim.id)

    def _beat(self, watch: _Watch) -> None:
        running = watch.running
        progress = running.progress
        progress_changed = progress > watch.flushed_progress
        renewal_due = time.monotonic() - watch.renewed_at >= self.lease_s / 3
        if not (progress_changed or renewal_due):
            return
        kept = queue.renew_lease(
            running.db,
            running.claim,
            lease_s=self.lease_s,
            progress=progress if progress_changed else None,
        )
        if not kept:
            running.cancel("lease_lost")
            watch.over = True
            return
        watch.renewed_at = time.monotonic()
        watch.flushed_progress = progress
