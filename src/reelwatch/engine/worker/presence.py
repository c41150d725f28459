"""A worker's row in the workers table: registered at start, beaten every
``presence_interval_s`` from its own thread (a long transcode must not look like a dead
worker), with its state, current task and node resources; the beat also brings back a
drain request (``reelwatch workers drain``)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import update

from reelwatch.database import Database, utcnow
from reelwatch.engine.schema import WorkerRecord

log = logging.getLogger(__name__)


class Presence:
    def __init__(
        self,
        db: Database,
        worker_id: str,
        queues: tuple[str, ...],
        *,
        interval_s: float,
        current_task: Callable[[], int | None],
        resources: Callable[[], dict[str, float]],
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.queues = queues
        self.interval_s = interval_s
        self.current_task = current_task
        self.resources = resources
        # Set when `reelwatch workers drain` asks: finish the task, claim no more, exit.
        self.draining = threading.Event()

    def beat_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            self.announce(None)

    def announce(self, state: str | None, *, fresh: bool = False) -> None:
        """Upsert this worker's row (state None: keep the state, beat only) and learn
        whether it is asked to drain (``fresh``: a new run forgets an old request).

        On start, stop, state changes and every beat, never per task: two extra write
        transactions per task would halve the queue's throughput."""
        now = utcnow()
        current_task = self.current_task()
        try:
            with self.db.write() as session:
                values: dict[str, Any] = {
                    "heartbeat_at": now,
                    "current_task_id": current_task,
                    "resources": self.resources(),
                }
                if state:
                    values["state"] = state
                if fresh:
                    values["drain_requested_at"] = None
                updated = session.execute(
                    update(WorkerRecord)
                    .where(WorkerRecord.id == self.worker_id)
                    .values(**values)
                    .returning(WorkerRecord.drain_requested_at)
                ).first()
                if updated is not None:
                    self._note_drain_request(updated.drain_requested_at)
                else:
                    session.add(
                        WorkerRecord(
                            id=self.worker_id,
                            hostname=socket.gethostname(),
                            pid=os.getpid(),
                            queues=",".join(self.queues),
                            state=state or "idle",
                            current_task_id=current_task,
                            started_at=now,
                            heartbeat_at=now,
                            resources=values["resources"],
                        )
                    )
        except Exception:
            log.exception("worker %s could not record its presence", self.worker_id)

    def _note_drain_request(self, requested_at: datetime | None) -> None:
        if requested_at is not None and not self.draining.is_set():
            log.warning("worker %s drains: it finishes its task, then exits", self.worker_id)
            self.draining.set()


def request_drain(db: Database, worker_id: str) -> bool:
    """Ask a worker to finish its task, claim no more and exit; False if it is unknown
    or stopped. It notices at its next presence beat (``PRESENCE_INTERVAL_S``)."""
    with db.write() as session:
        asked = session.execute(
            update(WorkerRecord)
            .where(WorkerRecord.id == worker_id, WorkerRecord.state.not_in(("stopped", "lost")))
            .values(drain_requested_at=utcnow())
        )
        return bool(asked.rowcount)  # type: ignore[attr-defined]


def mark_worker_lost(db: Database, worker_id: str) -> None:
    """Record that a worker's process is known dead (its supervisor saw it exit), so the
    monitor stops watching for its heartbeat instead of reporting it down."""
    with db.write() as session:
        session.execute(
            update(WorkerRecord)
            .where(WorkerRecord.id == worker_id, WorkerRecord.state != "stopped")
            .values(state="lost", current_task_id=None)
        )
