"""The worker role: one process running ``engine.Worker`` (and a notification
dispatcher beside it) until SIGTERM or SIGINT; the worker stands as a candidate for the
engine's maintenance, with every duty (``operations.prune.maintenance_duties``).

A signal stops claiming, stops the running task's ffmpeg and hands the task back to
the queue at once, so a restart never waits for a lease to expire.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.engine.worker import Worker, WorkerConfig
from reelwatch.monitor.resources import node_resources
from reelwatch.notify.dispatcher import dispatching
from reelwatch.operations.prune import maintenance_duties
from reelwatch.storage import open_store
from reelwatch.videos.pipeline import register_workflows


def run_worker(
    settings: Settings, *, name: str | None = None, queues: tuple[str, ...] = ("default",)
) -> None:
    db = Database(settings.resolved_database_url, pool_size=3)
    store = open_store(settings)
    store.ensure_layout()  # and the scratch copies of workers that died go

    def preflight() -> str | None:
        store.tidy_scratch()  # between tasks: the copies of originals no task uses
        return store.describe_problem()

    config = WorkerConfig(
        lease_s=settings.lease_seconds,
        queues=queues,
        name=name,
        backoff_scale=settings.retry_backoff_scale,
    )
    worker = Worker(
        db,
        config,
        preflight=preflight,
        workflows=register_workflows(settings, store),
        resources=lambda: node_resources(settings.media_root, settings.home),
        maintenance=maintenance_duties(db, settings),
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        with dispatching(db, settings, owner=worker.id):
            worker.run(stop)
    finally:
        db.dispose()
