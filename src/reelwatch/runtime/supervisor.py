"""``reelwatch up``: the API server, N workers and the monitor as child processes, kept
alive; and ``reelwatch worker --concurrency N`` / ``--autoscale MIN,MAX``: the worker
processes of one processing machine, kept alive and (autoscale) sized to the queue.

A child that dies is restarted with exponential backoff (reset once it has stayed up a
while), and one that keeps dying raises a crash-loop alert; a dead worker's tasks are
re-queued at once instead of after their lease.
SIGTERM or SIGINT stops the children gracefully, and children die with the supervisor
even when it is SIGKILLed, so a restart never finds the old ones holding the port.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.engine.maintenance import expire_stale_leases
from reelwatch.engine.worker import mark_worker_lost, request_drain
from reelwatch.notify import outbox
from reelwatch.processes import die_with_parent
from reelwatch.runtime.autoscale import CHECK_EVERY_S, Autoscaler, queue_pressure

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2
STABLE_AFTER_S = 60.0
CRASH_LOOP_FAILURES = 3
MAX_BACKOFF_S = 30.0
SHUTDOWN_GRACE_S = 20.0


@dataclass
class Child:
    """One supervised role; ``generation`` counts restarts and names each worker run."""

    role: str
    index: int
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0
    failures: int = 0
    worker_name: str = ""
    args: tuple[str, ...] = ()
    # A worker the autoscaler is draining: when it exits it is not restarted.
    retiring: bool = False

    def command(self) -> list[str]:
        base = [sys.executable, "-m", "reelwatch"]
        if self.role == "worker":
            return [*base, "worker", "--name", self.worker_name, *self.args]
        return [*base, *self.args]


class Supervisor:
    """``up`` (``services``: mail sink, server, monitor, workers), or the worker
    processes of one processing machine (``reelwatch worker --concurrency/--autoscale``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: bool = True,
        workers: int | None = None,
        queues: tuple[str, ...] = ("default",),
        autoscaler: Autoscaler | None = None,
    ) -> None:
        self.settings = settings
        self.environment = dict(os.environ)
        self.children: list[Child] = []
        self.worker_args = ("--queues", ",".join(queues))
        self.queues = queues
        self.autoscaler = autoscaler
        self._next_scale_check = 0.0
        if services:
            self._add_services(settings)
        count = workers if workers is not None else settings.workers
        if autoscaler is not None:
            count = autoscaler.minimum
        self.children += [self._worker(i) for i in range(count)]
        self.stopping = threading.Event()
        self._db: Database | None = None

    def _worker(self, index: int) -> Child:
        return Child("worker", index, args=self.worker_args)

    def _add_services(self, settings: Settings) -> None:
        if settings.smtp_url is None:
            # The embedded default: a mail sink whose mail `reelwatch mail` shows.
            port = free_port()
            self.environment["REELWATCH_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
            sink = ("mock", "smtp", "--port", str(port), "--folder", str(settings.mail_folder))
            self.children.append(Child("mailsink", 0, args=sink))
        self.children.append(Child("server", 0, args=("server", "--no-bootstrap")))
        self.children.append(Child("monitor", 0, args=("monitor",)))

    def run(self) -> int:
        self._db = Database(self.settings.resolved_database_url, pool_size=1)
        try:
            for child in self.children:
                self._start(child)
            while not self.stopping.wait(POLL_INTERVAL_S):
                for child in list(self.children):
                    self._tend(child)
                self._autoscale()
        finally:
            self._stop_all()
            self._db.dispose()
        return 0

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self.stopping.set()

    def _start(self, child: Child) -> None:
        if child.role == "server":
            wait_for_free_port(*self.settings.host_port)
        child.generation += 1
        child.worker_name = (
            f"{os.uname().nodename}:up-{child.index}.{child.generation}:{os.getpid()}"
        )
        # SIGTERM, not SIGKILL: an orphaned worker still hands its task back.
        supervisor_pid = os.getpid()
        child.process = subprocess.Popen(
            child.command(),
            env=self.environment,
            preexec_fn=lambda: die_with_parent(supervisor_pid, signal.SIGTERM),
        )
        child.started_at = time.monotonic()
        log.info("started %s %d (pid %d)", child.role, child.index, child.process.pid)

    def _tend(self, child: Child) -> None:
        now = time.monotonic()
        if child.process is None:
            if now >= child.restart_at:
                self._start(child)
            return
        code = child.process.poll()
        if code is None:
            if now - child.started_at > STABLE_AFTER_S:
                child.failures = 0
            return
        child.process = None
        if child.retiring:
            log.info("worker %s drained and retired", child.worker_name)
            self.children.remove(child)
            return
        child.failures += 1
        delay = min(MAX_BACKOFF_S, 2 ** (child.failures - 1))
        child.restart_at = now + delay
        log.warning(
            "%s %d exited with %s; restarting in %.0f s", child.role, child.index, code, delay
        )
        if child.role == "worker":
            self._rescue_tasks_of(child.worker_name)
        if child.failures == CRASH_LOOP_FAILURES:
            self._alert_crash_loop(child, code)

    def _autoscale(self) -> None:
        now = time.monotonic()
        if self.autoscaler is None or now < self._next_scale_check:
            return
        self._next_scale_check = now + CHECK_EVERY_S
        assert self._db is not None
        active = [c for c in self.children if c.role == "worker" and not c.retiring]
        try:
            with self._db.read() as session:
                pressure = queue_pressure(session, self.queues, utcnow())
        except Exception:
            log.exception("autoscaler cannot read the queue; keeping %d workers", len(active))
            return
        step = self.autoscaler.decide(pressure, len(active), now)
        if step > 0:
            child = self._worker(max((c.index for c in self.children), default=-1) + 1)
            self.children.append(child)
            self._start(child)
            log.warning(
                "autoscale: %d tasks waiting; worker %d started",
                pressure.waiting_tasks,
                len(active) + 1,
            )
        elif step < 0 and active:
            newest = max(active, key=lambda c: c.index)
            newest.retiring = True
            request_drain(self._db, newest.worker_name)
            log.warning("autoscale: idle; draining worker %s", newest.worker_name)

    def _alert_crash_loop(self, child: Child, code: int) -> None:
        """Restarting keeps it alive, but a child that cannot stay up needs a person."""
        assert self._db is not None
        name = f"{child.role} {child.index}"
        message = outbox.Message(
            key=f"alert:crash_loop:{os.uname().nodename}:{child.role}{child.index}:"
            f"{utcnow():%Y-%m-%dT%H}",
            channel=outbox.ALERT,
            recipient=outbox.ADMINS,
            subject=f"[reelwatch {self.settings.env}] CRITICAL crash_loop {name}",
            body_text=f"What: {name} on {os.uname().nodename} exited {child.failures} times "
            f"in a row without staying up {STABLE_AFTER_S:.0f} s (last exit code {code}).\n"
            f"Since: {utcnow():%Y-%m-%d %H:%M:%S} UTC.\nWhat to do: read the output of "
            "`reelwatch up` for its error; `reelwatch up` keeps restarting it with backoff "
            f"(at most every {MAX_BACKOFF_S:.0f} s).",
        )
        try:
            with self._db.write() as session:
                outbox.enqueue(session, message)
        except Exception:
            log.exception("could not record the crash-loop alert for %s", name)

    def _rescue_tasks_of(self, worker_name: str) -> None:
        assert self._db is not None
        try:
            rescued = expire_stale_leases(
                self._db, worker_id=worker_name, backoff_scale=self.settings.retry_backoff_scale
            )
            if rescued:
                log.warning("re-queued %d tasks of dead worker %s", rescued, worker_name)
            mark_worker_lost(self._db, worker_name)
            # Its dispatcher died with it (the worker id is the dispatcher's owner).
            outbox.release_leases(self._db, worker_name)
        except Exception:
            log.exception(
                "could not re-queue the tasks of %s; their leases will expire", worker_name
            )

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process is not None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_free_port(host: str, port: int, timeout_s: float = 15.0) -> None:
    """Wait while a previous server (one shutting down after a crash of ``up``) still
    holds the port, so the new one does not fail to bind and wait out a backoff."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError:
                time.sleep(0.1)
    log.warning("port %d is still taken; starting the server anyway", port)


def run_supervisor(settings: Settings, **options: Any) -> int:
    """Run until SIGTERM or SIGINT; ``options`` go to ``Supervisor``."""
    supervisor = Supervisor(settings, **options)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    return supervisor.run()
