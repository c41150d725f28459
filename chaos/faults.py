"""The fault injectors, and the scheduler that fires them at seeded random moments.

Instant faults (SIGKILLs) happen and are done; outages (SMTP, database, disk) last a
few seconds and end by themselves. At most one fault of each kind runs at a time, but
different kinds overlap, as real trouble does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import psutil

from chaos.instance import UpInstance
from chaos.journal import Journal, Outage
from chaos.postgres import PostgresServer
from chaos.smtp import RecordingSmtp

FILLER_NAME = ".chaos-disk-filler"


class Injector(Protocol):
    kind: str
    copies: int  # how often it comes up in each round of the deck

    def inject(self, rng: random.Random, journal: Journal) -> None:
        """Cause the fault; an outage returns once it is over."""


@dataclass
class KillWorker:
    """SIGKILL one of ``up``'s workers: mostly one with ffmpeg running (waiting a few
    seconds for one to be), sometimes whichever comes first."""

    up: UpInstance
    kind: str = "worker_sigkill"
    copies: int = 3
    busy_share: float = 0.8
    busy_wait_s: float = 5.0

    def inject(self, rng: random.Random, journal: Journal) -> None:
        want_busy = rng.random() < self.busy_share
        deadline = time.monotonic() + (self.busy_wait_s if want_busy else 0.0)
        while True:
            workers = self.up.workers()
            busy = [w for w in workers if _runs_ffmpeg(w)]
            if busy or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if not workers:
            journal.note("worker_sigkill skipped: no worker running (up is restarting)")
            return
        victim = rng.choice(busy if busy and want_busy else workers)
        doing = "mid-ffmpeg" if victim in busy else "between tasks"
        with contextlib.suppress(psutil.Error):
            name = _worker_name(victim.cmdline())
            victim.send_signal(signal.SIGKILL)
            journal.fault(self.kind, f"{name} (pid {victim.pid}) {doing}")


@dataclass
class KillUp:
    """SIGKILL ``reelwatch up`` (alone, or with every child at once); the keeper restarts it."""

    up: UpInstance
    kind: str = "up_sigkill"
    copies: int = 1

    def inject(self, rng: random.Random, journal: Journal) -> None:
        whole_tree = rng.random() < 0.5
        detail = self.up.crash(whole_tree=whole_tree)
        if detail:
            journal.fault("up_crash" if whole_tree else self.kind, detail)


@dataclass
class CrashMidUpload:
    """``up`` and all its children SIGKILLed while an upload is half sent: the server
    dies before it can remove its partial file, so something else must."""

    up: UpInstance
    video: Path
    token: str
    kind: str = "up_crash_mid_upload"
    copies: int = 1

    def inject(self, rng: random.Random, journal: Journal) -> None:
        half_sent, cut = threading.Event(), threading.Event()
        data = self.video.read_bytes()
        split = rng.randrange(len(data) // 4, len(data) // 2)
        body = _half_then_wait(data, split, half_sent, cut)
        upload = threading.Thread(target=self._post, args=(body,), daemon=True)
        upload.start()
        try:
            if not (half_sent.wait(10) and self._partial_file_written()):
                journal.note("up_crash_mid_upload skipped: the upload did not start")
                return
            detail = self.up.crash(whole_tree=True)
            if detail:
                journal.fault(self.kind, f"{split // 1024} KiB into an upload; {detail}")
        finally:
            cut.set()
            upload.join()

    def _partial_file_written(self, timeout_s: float = 10.0) -> bool:
        """Wait until the server is streaming an upload into ``media/incoming``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if any(p.stat().st_size for p in self.up.media_root.glob("incoming/*.part")):
                    return True
            time.sleep(0.05)
        return False

    def _post(self, body: Iterator[bytes]) -> None:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": f"multipart/form-data; boundary={_BOUNDARY}",
        }
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{self.up.url}/api/v1/videos", content=body, headers=headers, timeout=30)


_BOUNDARY = "chaos-boundary-7MA4YWxkTrZu0gW"


def _half_then_wait(
    data: bytes, split: int, half_sent: threading.Event, cut: threading.Event
) -> Iterator[bytes]:
    """A multipart body that sends ``split`` bytes of the file, then stalls until ``cut``."""
    yield (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="cut.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    yield data[:split]
    half_sent.set()
    cut.wait(30)
    yield data[split:]
    yield f"\r\n--{_BOUNDARY}--\r\n".encode()


@dataclass
class SmtpOutage:
    """The mail server goes away (port closed) or refuses mail (451), then comes back."""

    smtp: RecordingSmtp
    kind: str = "smtp_outage"
    copies: int = 1
    seconds: tuple[float, float] = (3.0, 15.0)

    def inject(self, rng: random.Random, journal: Journal) -> None:
        closed = rng.random() < 0.5
        length = rng.uniform(*self.seconds)
        how = "port closed" if closed else "answering 451"
        with Outage(journal, self.kind, f"{how} for {length:.1f} s"):
            if closed:
                self.smtp.stop()
            else:
                self.smtp.refuse(True)
            time.sleep(length)
            self.smtp.start()
            self.smtp.refuse(False)


@dataclass
class PostgresRestart:
    """Stop PostgreSQL (cleanly, or as a crash) and start it again seconds later."""

    server: PostgresServer
    kind: str = "database_restart"
    copies: int = 1
    seconds: tuple[float, float] = (1.0, 6.0)

    def inject(self, rng: random.Random, journal: Journal) -> None:
        mode = rng.choice(("fast", "immediate"))
        down = rng.uniform(*self.seconds)
        with Outage(journal, self.kind, f"pg_ctl stop -m {mode}, down {down:.1f} s"):
            self.server.stop(mode)
            time.sleep(down)
            self._start_again()

    def _start_again(self) -> None:
        for attempt in range(1, 6):
            try:
                self.server.start()
                return
            except RuntimeError:
                if attempt == 5:
                    raise
                time.sleep(1.0)


@dataclass
class SqliteLock:
    """Another connection holds ``BEGIN EXCLUSIVE`` for seconds: every writer waits."""

    database: Path
    kind: str = "database_lock"
    copies: int = 1
    seconds: tuple[float, float] = (1.0, 6.0)

    def inject(self, rng: random.Random, journal: Journal) -> None:
        hold = rng.uniform(*self.seconds)
        connection = sqlite3.connect(self.database, timeout=60, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            with Outage(journal, self.kind, f"BEGIN EXCLUSIVE held {hold:.1f} s"):
                time.sleep(hold)
            connection.execute("ROLLBACK")
        finally:
            connection.close()


@dataclass
class DiskFull:
    """Fill the small file system under the media folder to the last byte, then free it."""

    media_root: Path
    kind: str = "disk_full"
    copies: int = 1
    seconds: tuple[float, float] = (3.0, 12.0)

    def inject(self, rng: random.Random, journal: Journal) -> None:
        hold = rng.uniform(*self.seconds)
        filler = self.media_root / FILLER_NAME
        with Outage(journal, self.kind, f"media file system full for {hold:.1f} s") as record:
            try:
                written = fill_until_full(filler)
                record.detail += f" ({written / 2**20:.0f} MiB filler)"
                time.sleep(hold)
            finally:
                filler.unlink(missing_ok=True)


@dataclass
class StoreUnwritable:
    """Where no small file system can be mounted (not root): the media folder loses its
    write permission for seconds, which workers meet as ``storage_unavailable``."""

    media_root: Path
    kind: str = "store_unwritable"
    copies: int = 1
    seconds: tuple[float, float] = (3.0, 12.0)

    def inject(self, rng: random.Random, journal: Journal) -> None:
        hold = rng.uniform(*self.seconds)
        folders = [self.media_root / "incoming", self.media_root / "videos"]
        modes = {folder: folder.stat().st_mode for folder in folders}
        with Outage(journal, self.kind, f"media folders read-only for {hold:.1f} s"):
            try:
                for folder in folders:
                    folder.chmod(0o555)
                time.sleep(hold)
            finally:
                for folder, mode in modes.items():
                    folder.chmod(mode)


def fill_until_full(path: Path) -> int:
    """Write zeros to ``path`` until the file system says ENOSPC; bytes written."""
    chunk = b"\0" * (1 << 20)
    written = 0
    # Unbuffered: a short write fills the last pages, and the next one fails.
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(chunk) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return written


def mount_small_filesystem(folder: Path, size_mb: int) -> str | None:
    """Mount a tmpfs of ``size_mb`` on ``folder``; None on success, else why not."""
    if os.geteuid() != 0:
        return "not root, so no file system can be mounted"
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return f"mount -t tmpfs failed: {result.stderr.strip() or result.returncode}"
    return None


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _worker_name(cmdline: list[str]) -> str:
    """The value of ``--name`` in a worker's command line."""
    if "--name" in cmdline[:-1]:
        return cmdline[cmdline.index("--name") + 1]
    return " ".join(cmdline[-3:])


def _runs_ffmpeg(worker: psutil.Process) -> bool:
    try:
        return any(child.name() == "ffmpeg" for child in worker.children())
    except psutil.Error:
        return False


class FaultScheduler:
    """Fires injectors at random gaps until ``stop``, then waits for outages to end.

    Injectors are dealt from a shuffled deck holding ``copies`` of each, so every kind
    of fault happens in every round, in an order the seed decides.
    """

    def __init__(
        self,
        injectors: list[Injector],
        rng: random.Random,
        journal: Journal,
        gap_s: tuple[float, float] = (2.0, 8.0),
    ) -> None:
        self.injectors = injectors
        self.rng = rng
        self.journal = journal
        self.gap_s = gap_s
        self.errors: list[str] = []
        self._deck: list[Injector] = []
        self._active: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop firing and wait until every outage has been repaired."""
        self._stop.set()
        self._thread.join()
        for thread in list(self._active.values()):
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.gap_s)):
            injector = self._draw()
            if injector is None:
                continue
            # Each fault draws from its own generator, so threads never share one.
            own_rng = random.Random(self.rng.getrandbits(64))
            thread = threading.Thread(
                target=self._inject, args=(injector, own_rng), name=injector.kind
            )
            self._active[injector.kind] = thread
            thread.start()

    def _draw(self) -> Injector | None:
        """The next card whose kind is not still going on (an outage lasts a while)."""
        if not self._deck:
            self._deck = [i for i in self.injectors for _ in range(i.copies)]
            self.rng.shuffle(self._deck)
        for index, injector in enumerate(self._deck):
            if not self._is_active(injector.kind):
                return self._deck.pop(index)
        return None

    def _is_active(self, kind: str) -> bool:
        thread = self._active.get(kind)
        return thread is not None and thread.is_alive()

    def _inject(self, injector: Injector, rng: random.Random) -> None:
        try:
            injector.inject(rng, self.journal)
        except Exception as exc:  # a broken injector must not end the run silently
            self.errors.append(f"{injector.kind}: {type(exc).__name__}: {exc}")
            self.journal.note(f"injector {injector.kind} failed: {exc}")
