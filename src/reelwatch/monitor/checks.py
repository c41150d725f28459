"""The component checks: each component probed on a schedule by the elected monitor
(``ComponentChecks``), whose results it records (``reelwatch.insights.checks``)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable

from sqlalchemy import text

from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.insights.checks import CRITICAL, OK, SEVERITY, UNKNOWN, WARNING, CheckResult
from reelwatch.insights.load import Load
from reelwatch.media.ffmpeg import FFMPEG
from reelwatch.monitor.resources import disk_free_percent
from reelwatch.notify.smtp import DeliveryError, check_smtp
from reelwatch.smtp_target import SmtpTarget
from reelwatch.storage import MediaStore

# A node's figures (psutil, from its workers and from the monitor): warning, critical.
NODE_LIMITS: dict[str, tuple[str, float, float]] = {
    "disk_free_percent": ("below", 10.0, 5.0),
    "memory_percent": ("above", 90.0, 97.0),
    "load_per_core": ("above", 4.0, 8.0),
}


def check_database(db: Database) -> CheckResult:
    started = time.monotonic()
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return CheckResult(CRITICAL, f"the database does not answer: {exc}")
    elapsed_ms = (time.monotonic() - started) * 1000
    state = OK if elapsed_ms < 1000 else WARNING
    return CheckResult(state, f"answers in {elapsed_ms:.0f} ms", elapsed_ms)


def check_storage(store: MediaStore) -> CheckResult:
    """A probe file (or object) written, read back and removed; the disk's free share."""
    try:
        store.check_writable()
    except OSError as exc:
        return CheckResult(
            CRITICAL, f"media store {store.description} is not writable: {exc.strerror or exc}"
        )
    disk = store.disk_path()
    free = disk_free_percent(disk) if disk is not None else None
    if free is None:
        return CheckResult(OK, f"writable ({store.description})")
    return _against_limit("disk_free_percent", free, f"writable, {free:g} % of its disk free")


def check_mail(settings: Settings) -> CheckResult:
    if settings.smtp_url is None:
        return CheckResult(UNKNOWN, "no SMTP server is configured (REELWATCH_SMTP_URL)")
    target = SmtpTarget.from_url(settings.smtp_url)
    started = time.monotonic()
    try:
        asyncio.run(check_smtp(target, timeout_s=10))
    except DeliveryError as exc:
        return CheckResult(CRITICAL, str(exc))
    elapsed_ms = (time.monotonic() - started) * 1000
    return CheckResult(OK, f"{target.redacted()} greets in {elapsed_ms:.0f} ms", elapsed_ms)


def check_ffmpeg() -> CheckResult:
    """ffmpeg is installed and starts (the ping check proves it encodes, on a worker)."""
    try:
        run = subprocess.run(
            [FFMPEG, "-hide_banner", "-version"], capture_output=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return CheckResult(CRITICAL, f"ffmpeg does not run: {exc}")
    version = run.stdout.decode(errors="replace").split("\n", 1)[0]
    return CheckResult(OK, version)


SIMULATED_TRANSCODER = "simulated: the transcoder is a stand-in, ffmpeg is not used"


def check_transcoder(settings: Settings) -> CheckResult:
    """``check_ffmpeg``, except in simulation mode, which needs no ffmpeg."""
    return CheckResult(OK, SIMULATED_TRANSCODER) if settings.simulate else check_ffmpeg()


def worker_checks(load: Load) -> dict[str, CheckResult]:
    """One check per worker that has not stopped: alive while it heartbeats."""
    results = {}
    for worker in load.workers:
        if worker.state in ("stopped", "lost"):
            continue
        if worker.alive:
            result = CheckResult(
                OK, f"{worker.state}, heartbeat {worker.heartbeat_age_s:.0f} s ago"
            )
        else:
            result = CheckResult(
                CRITICAL, f"no heartbeat for {worker.heartbeat_age_s:.0f} s (was {worker.state})"
            )
        results[f"worker:{worker.id}"] = result
    return results


def node_checks(load: Load, monitor_node: dict[str, float]) -> dict[str, CheckResult]:
    """One check per machine: the monitor's own, and each live worker's latest report."""
    nodes = {socket.gethostname(): monitor_node}
    for worker in sorted(load.workers, key=lambda w: -w.heartbeat_age_s):
        if worker.alive and worker.resources:
            nodes[worker.hostname] = worker.resources
    return {f"node:{host}": _node_result(figures) for host, figures in nodes.items()}


def _node_result(figures: dict[str, float]) -> CheckResult:
    results = [_against_limit(name, figures[name]) for name in NODE_LIMITS if name in figures]
    worst = max((r.state for r in results), key=SEVERITY.__getitem__, default=OK)
    strained = [r.detail for r in results if r.state != OK]
    summary = ", ".join(f"{name} {value:g}" for name, value in sorted(figures.items()))
    return CheckResult(worst, "; ".join(strained) or summary)


def _against_limit(figure: str, value: float, fine: str = "") -> CheckResult:
    side, warn, critical = NODE_LIMITS[figure]
    for state, limit in ((CRITICAL, critical), (WARNING, warn)):
        if value < limit if side == "below" else value > limit:
            return CheckResult(state, f"{figure} {value:g} ({side} {limit:g})", value)
    return CheckResult(OK, fine or f"{figure} {value:g}", value)


class ComponentChecks:
    """The schedule of the checks that cost something (a connection, a process)."""

    def __init__(self, db: Database, settings: Settings, store: MediaStore) -> None:
        self.schedule: dict[str, tuple[float, Callable[[], CheckResult]]] = {
            "database": (0.0, lambda: check_database(db)),
            "storage": (30.0, lambda: check_storage(store)),
            "smtp": (60.0, lambda: check_mail(settings)),
            "ffmpeg": (300.0, lambda: check_transcoder(settings)),
        }
        self.next_due: dict[str, float] = {}

    def run_due(self) -> dict[str, CheckResult]:
        now = time.monotonic()
        results = {}
        for name, (every_s, run) in self.schedule.items():
            if now >= self.next_due.get(name, 0.0):
                results[name] = run()
                self.next_due[name] = now + every_s
        return results
