"""run_ffmpeg's guard rails with a real ffmpeg: progress, stall, wall clock, cancel, limits,
and the kernel killing ffmpeg when its worker is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

import samples
from media.processes import live_ffmpeg_children, wait_for
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media import (
    FfmpegCancelled,
    FfmpegLimits,
    MediaInfo,
    RenditionPlan,
    run_ffmpeg,
    transcode,
)

NULL_OUTPUT = ["-f", "null", "-"]
ENDLESS = ["-re", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=120", *NULL_OUTPUT]


@pytest.fixture(autouse=True)
def no_ffmpeg_left_behind() -> Iterator[None]:
    yield
    # run_ffmpeg reaps its child before it returns or raises, so none may be left at all.
    assert not live_ffmpeg_children(), "a test left ffmpeg running"


def test_progress_rises_to_the_end_and_the_run_reports_how_far_it_got() -> None:
    fractions: list[float] = []
    run = run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=3", "-f", "null", "-"],
        duration_s=3.0,
        limits=FfmpegLimits(),
        on_progress=fractions.append,
    )
    assert fractions and fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions[-1] > 0.9
    assert run.out_time_s == pytest.approx(3.0, abs=0.1)


def test_a_flood_of_stderr_is_drained_and_only_its_tail_kept() -> None:
    run = run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2", "-loglevel", "debug", *NULL_OUTPUT],
        duration_s=2.0,
        limits=FfmpegLimits(stall_timeout_s=20),
    )
    assert 1000 < len(run.stderr_tail) <= 4096 + 100


def test_an_input_that_never_delivers_is_a_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(TaskFailure) as caught:
        run_ffmpeg(
            ["-i", f"file:{fifo}", "-f", "null", "-"],
            duration_s=10,
            limits=FfmpegLimits(stall_timeout_s=0.5),
        )
    assert caught.value.code is FailureCode.TIMEOUT
    assert "no progress for 0.5 s" in caught.value.message
    assert time.monotonic() - started < 5


def test_a_stall_mid_transcode_is_a_timeout_and_leaves_no_file(tmp_path: Path) -> None:
    stream = samples.make_video(tmp_path / "stream.ts", duration_s=12, container="mpegts")
    fifo = tmp_path / "upload"
    os.mkfifo(fifo)
    feeder = _PartialFeeder(fifo, stream.read_bytes(), fraction=0.6)
    output = tmp_path / "out"
    output.mkdir()
    info = MediaInfo(12.0, 320, 240, 0, "h264", True, 25.0, "mpegts", stream.stat().st_size)
    seen_while_running: list[str] = []
    try:
        with pytest.raises(TaskFailure) as caught:
            transcode(
                fifo,
                output / "240p.mp4",
                RenditionPlan("240p", 320, 240),
                info,
                limits=FfmpegLimits(stall_timeout_s=3),
                on_progress=lambda _: seen_while_running.extend(p.name for p in output.iterdir()),
            )
    finally:
        feeder.finish()
    assert caught.value.code is FailureCode.TIMEOUT
    assert any(name.endswith(".tmp") for name in seen_while_running), "ffmpeg never got going"
    assert list(output.iterdir()) == []


def test_the_wall_clock_limit_is_a_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(TaskFailure) as caught:
        run_ffmpeg(ENDLESS, duration_s=120, limits=FfmpegLimits(timeout_s=1))
    assert caught.value.code is FailureCode.TIMEOUT
    assert "longer than 1 s" in caught.value.message
    assert time.monotonic() - started < 5


def test_cancel_kills_ffmpeg() -> None:
    cancel = threading.Event()
    with pytest.raises(FfmpegCancelled):
        run_ffmpeg(
            ENDLESS,
            duration_s=120,
            limits=FfmpegLimits(),
            on_progress=lambda _: cancel.set(),
            cancel=cancel,
        )
    assert not live_ffmpeg_children()


def test_cancelled_transcode_leaves_no_file(long_video: Path, tmp_path: Path) -> None:
    info = MediaInfo(20.0, 640, 360, 0, "h264", True, 25.0, "mp4", long_video.stat().st_size)
    cancel = threading.Event()
    seen_while_running: list[str] = []

    def look_and_cancel(_: float) -> None:
        seen_while_running.extend(p.name for p in tmp_path.iterdir())
        cancel.set()

    with pytest.raises(FfmpegCancelled):
        transcode(
            long_video,
            tmp_path / "360p.mp4",
            RenditionPlan("360p", 640, 360),
            info,
            limits=FfmpegLimits(),
            on_progress=look_and_cancel,
            cancel=cancel,
        )
    assert any(name.endswith(".tmp") for name in seen_while_running)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_ffmpeg_runs_with_memory_and_core_limits_and_its_niceness_in_its_own_group(
    executor: ThreadPoolExecutor,
) -> None:
    cancel = threading.Event()
    limits = FfmpegLimits(memory_mb=1536, nice=7)
    running: Future[object] = executor.submit(
        run_ffmpeg, ENDLESS, duration_s=120, limits=limits, cancel=cancel
    )
    try:
        ffmpeg = wait_for(live_ffmpeg_children)[0]
        limits_file = Path(f"/proc/{ffmpeg.pid}/limits").read_text()
        pgid = os.getpgid(ffmpeg.pid)
        niceness = ffmpeg.nice()
        autogroup = Path(f"/proc/{ffmpeg.pid}/autogroup")
        grouped = autogroup.read_text() if autogroup.exists() else "nice 7"
        session = os.getsid(ffmpeg.pid)
    finally:
        cancel.set()
    assert isinstance(running.exception(timeout=20), FfmpegCancelled)
    assert _limit(limits_file, "Max address space") == str(1536 * 1024 * 1024)
    assert _limit(limits_file, "Max core file size") == "0"
    assert pgid == ffmpeg.pid, "ffmpeg should lead its own process group"
    # Its own session: where the kernel shares the cores by session, its niceness counts.
    assert niceness == os.nice(0) + 7 and grouped.split()[-2:] == ["nice", "7"]
    assert session == ffmpeg.pid


WORKER = """
import sys
from reelwatch.media import FfmpegLimits, run_ffmpeg
args = ["-re", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=120", "-f", "null", "-"]
run_ffmpeg(args, duration_s=120, limits=FfmpegLimits(),
           on_progress=lambda _: print("working", flush=True))
"""


def test_ffmpeg_dies_with_its_sigkilled_worker() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == b"working\n"
        ffmpeg = live_ffmpeg_children(worker.pid)[0]
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        wait_for(lambda: not _alive(ffmpeg), timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        for stream in (worker.stdout, worker.stderr):
            if stream is not None:
                stream.close()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _limit(proc_limits: str, name: str) -> str:
    line = next(line for line in proc_limits.splitlines() if line.startswith(name))
    return line[len(name) :].split()[0]


class _PartialFeeder:
    """Writes the first part of a stream into a FIFO, then holds it open without writing more."""

    def __init__(self, fifo: Path, data: bytes, *, fraction: float) -> None:
        self._fifo, self._data = fifo, data[: int(len(data) * fraction)]
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self._release.set()
        # If ffmpeg never opened the FIFO, our open for writing still blocks: meet it.
        reader = os.open(self._fifo, os.O_RDONLY | os.O_NONBLOCK)
        self._thread.join(timeout=10)
        os.close(reader)

    def _feed(self) -> None:
        try:
            with self._fifo.open("wb") as pipe:
                pipe.write(self._data)
                pipe.flush()
                self._release.wait()
        except BrokenPipeError:  # ffmpeg was killed while we wrote
            pass
