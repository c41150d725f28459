"""Running ffmpeg and ffprobe as guarded child processes: resource limits, progress and kill.

``run_ffmpeg`` reports progress, kills ffmpeg when it stalls, overruns its wall clock or is
cancelled, and turns a failed run into a ``TaskFailure`` through the classifier.
"""

from __future__ import annotations

import contextlib
import os
import queue
import resource
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media.classify import (
    MemoryUse,
    classify_ffmpeg_failure,
    failure_of_clean_exit,
    is_notable_stderr_line,
)
from reelwatch.processes import die_with_parent

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
STDERR_TAIL_BYTES = 4096
DEFAULT_MEMORY_MB = 4096

# The demuxers an upload may be read with: each reads the one file it is given, never
# another (no hls, dash, concat, image2, imf, sdp: they open files or URLs the upload
# names). Besides video containers and raw camera streams, audio files, single images
# and text are accepted so that probing can tell the user exactly what they sent.
ACCEPTED_FORMATS = (
    *("mov", "matroska", "avi", "flv", "mpegts", "mpeg", "mpegvideo", "asf", "ogg", "dv"),
    *("h264", "hevc", "m4v", "gif"),
    *("mp3", "aac", "wav", "flac"),
    *("png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"),
    "tty",
)

# How often the supervising loop wakes to look at the cancel event and the clocks.
_POLL_INTERVAL_S = 0.1
_MAX_NOTABLE_LINES = 20
_MAX_LINE_BYTES = 1024


@dataclass(frozen=True)
class FfmpegLimits:
    """Guard rails for one ffmpeg run; the defaults are those of the REELWATCH_FFMPEG_* settings."""

    stall_timeout_s: float = 120
    timeout_s: float = 4 * 3600
    threads: int = 0
    memory_mb: int = DEFAULT_MEMORY_MB
    # Added to ffmpeg's niceness: work that must yield the cores to more urgent work.
    nice: int = 0


@dataclass(frozen=True)
class FfmpegRun:
    """What a successful run leaves behind: how far the output got, and ffmpeg's complaints."""

    out_time_s: float | None
    stderr_tail: str


class FfmpegCancelled(Exception):
    """The caller's cancel event was set, so ffmpeg was killed."""


def media_url(path: Path) -> str:
    """An ffmpeg URL for a file that no file name can turn into an option or a protocol."""
    return f"file:{path.absolute()}"


def media_input(path: Path) -> list[str]:
    """Input arguments for an uploaded file, which may only ever read that one file.

    A playlist disguised as a video would otherwise make ffmpeg fetch the URLs or read
    the local files it names; any other format is refused before its demuxer runs.
    """
    formats = ",".join(ACCEPTED_FORMATS)
    return ["-protocol_whitelist", "file", "-format_whitelist", formats, "-i", media_url(path)]


def child_preexec(memory_mb: int, nice: int = 0) -> Callable[[], None]:
    """The function the forked child runs before exec: limits, no core, its niceness,
    die with the parent."""
    memory_bytes = _capped_to_hard_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    parent_pid = os.getpid()

    def limit_child() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nice:
            os.nice(nice)
            _nice_own_autogroup(nice)
        # A SIGKILLed worker cannot clean up, so the kernel kills ffmpeg for it; the
        # thread that started ffmpeg waits for it to end.
        die_with_parent(parent_pid)

    return limit_child


def _nice_own_autogroup(nice: int) -> None:
    """Where the kernel groups processes by session for fairness (autogroup), niceness
    only ranks a session's own processes: another worker's ffmpeg, in its own session,
    would take half the cores whatever the niceness. The child leads a session of its
    own (``start_new_session``), so its group's niceness is its own to set. Elsewhere
    (no autogroup, or a container's cgroup) ``os.nice`` is what counts."""
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


def child_environment() -> dict[str, str]:
    # glibc reserves 64 MB of address space per malloc arena and makes up to 8 per core;
    # under RLIMIT_AS that would fail allocations on many-core machines for no real memory.
    return {**os.environ, "MALLOC_ARENA_MAX": "4"}


def run_ffmpeg(
    args: list[str],
    *,
    duration_s: float | None,
    limits: FfmpegLimits,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> FfmpegRun:
    """Run ffmpeg with ``args`` until it ends; raise ``TaskFailure`` or ``FfmpegCancelled``."""
    command = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats"]
    command += ["-loglevel", "warning", *args]
    process = _start(command, limits)
    assert process.stdout is not None and process.stderr is not None
    stderr = _StderrCollector(process.stderr)
    progress = _ProgressReader(process.stdout)
    guard = _Guard(limits, cancel, stderr, process.pid)
    try:
        out_time_s = _follow(process, progress, guard, _fraction_reporter(on_progress, duration_s))
    finally:
        _kill_and_reap(process)
        progress.join()
        stderr.join()
    if process.returncode != 0:
        memory = MemoryUse(cap_mb=limits.memory_mb, peak_mb=guard.peak_memory_mb)
        raise classify_ffmpeg_failure(process.returncode, stderr.text(), memory)
    unwritten = failure_of_clean_exit(stderr.text())
    if unwritten is not None:
        raise unwritten
    return FfmpegRun(out_time_s=out_time_s, stderr_tail=stderr.text())


def _start(command: list[str], limits: FfmpegLimits) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_environment(),
            # Its own session (so its own process group): a Ctrl-C aimed at the worker
            # must not make ffmpeg quit "normally" with a half-written file; the worker
            # decides when it stops. The session also gives its niceness weight.
            start_new_session=True,
            preexec_fn=child_preexec(limits.memory_mb, limits.nice),
        )
    except OSError as exc:
        raise TaskFailure(
            FailureCode.DEPENDENCY_DOWN, f"cannot start ffmpeg: {exc.strerror}", detail=str(exc)
        ) from exc


def _follow(
    process: subprocess.Popen[bytes],
    progress: _ProgressReader,
    guard: _Guard,
    report: Callable[[float], None],
) -> float | None:
    """Follow ffmpeg's progress until it exits; the last out_time in seconds."""
    out_time_s: float | None = None
    while not progress.ended:
        guard.check()
        seconds = progress.next_out_time(timeout=_POLL_INTERVAL_S)
        if seconds is not None and (out_time_s is None or seconds > out_time_s):
            out_time_s = seconds
            guard.saw_progress()
            report(seconds)
    # The clocks keep running while ffmpeg finishes its file (a faststart rewrite, or a hang).
    while not _exited(process, timeout=_POLL_INTERVAL_S):
        guard.check()
    return out_time_s


def _fraction_reporter(
    on_progress: Callable[[float], None] | None, duration_s: float | None
) -> Callable[[float], None]:
    def report(seconds: float) -> None:
        if on_progress is not None and duration_s:
            on_progress(min(1.0, max(0.0, seconds / duration_s)))

    return report


class _Guard:
    """Decides when a run must be stopped: cancelled, stalled, or over its wall clock.

    It also notes the most memory ffmpeg used, the evidence that tells a run killed
    for the memory its input needs from one killed for another reason.
    """

    def __init__(
        self,
        limits: FfmpegLimits,
        cancel: threading.Event | None,
        stderr: _StderrCollector,
        pid: int,
    ) -> None:
        self._limits, self._cancel, self._stderr, self._pid = limits, cancel, stderr, pid
        self._started = self._last_progress = time.monotonic()
        self.peak_memory_mb = 0.0

    def saw_progress(self) -> None:
        self._last_progress = time.monotonic()

    def check(self) -> None:
        self.peak_memory_mb = max(self.peak_memory_mb, _peak_memory_mb(self._pid))
        if self._cancel is not None and self._cancel.is_set():
            raise FfmpegCancelled("ffmpeg was cancelled")
        now, limits = time.monotonic(), self._limits
        if now - self._last_progress > limits.stall_timeout_s:
            self._time_out(f"ffmpeg made no progress for {limits.stall_timeout_s:g} s")
        if now - self._started > limits.timeout_s:
            self._time_out(f"ffmpeg ran longer than {limits.timeout_s:g} s")

    def _time_out(self, why: str) -> None:
        raise TaskFailure(FailureCode.TIMEOUT, f"{why} and was stopped", detail=self._stderr.text())


def _peak_memory_mb(pid: int) -> float:
    """The most address space the process has had (the kernel's VmPeak, which RLIMIT_AS
    caps); 0 once it has exited."""
    try:
        with Path(f"/proc/{pid}/status").open("rb") as status:
            for line in status:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _exited(process: subprocess.Popen[bytes], *, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill_and_reap(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _capped_to_hard_limit(limit: int, wanted: int) -> int:
    _, hard = resource.getrlimit(limit)
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


class _ProgressReader:
    """Turns ``-progress pipe:1`` lines into out_time seconds, read in a thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.ended = False
        self._out_times: queue.Queue[float | None] = queue.Queue()  # None: stdout closed
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def next_out_time(self, *, timeout: float) -> float | None:
        """The next out_time, or None when none came within ``timeout`` or stdout closed."""
        try:
            seconds = self._out_times.get(timeout=timeout)
        except queue.Empty:
            return None
        self.ended = seconds is None
        return seconds

    def join(self) -> None:
        self._thread.join()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for line in stream:
                seconds = _parse_out_time(line)
                if seconds is not None:
                    self._out_times.put(seconds)
        finally:
            stream.close()
            self._out_times.put(None)


def _parse_out_time(line: bytes) -> float | None:
    key, _, value = line.decode("ascii", "replace").strip().partition("=")
    if key != "out_time_us":
        return None
    try:
        microseconds = int(value)
    except ValueError:  # "N/A" before the first frame
        return None
    return microseconds / 1_000_000 if microseconds >= 0 else None


class _StderrCollector:
    """Drains stderr so ffmpeg never blocks on a full pipe, keeping what explains a failure.

    It keeps the last few KB, and separately the first lines that name a cause (a
    "partial file" early on is evidence even when thousands of warnings follow it).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._tail: deque[str] = deque()
        self._tail_size = 0
        self._notable: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def text(self) -> str:
        with self._lock:
            tail = list(self._tail)
            earlier = [line for line in self._notable if line not in tail]
        return "".join(f"{line}\n" for line in earlier + tail)

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                self._keep(raw[:_MAX_LINE_BYTES].decode("utf-8", "replace").rstrip("\r\n"))
        finally:
            stream.close()

    def _keep(self, line: str) -> None:
        with self._lock:
            self._tail.append(line)
            self._tail_size += len(line) + 1
            while self._tail_size > STDERR_TAIL_BYTES and len(self._tail) > 1:
                self._tail_size -= len(self._tail.popleft()) + 1
            if len(self._notable) < _MAX_NOTABLE_LINES and is_notable_stderr_line(line):
                self._notable.append(line)
