"""classify_ffmpeg_failure on the stderr of real failing ffmpeg runs, and on signals."""

from __future__ import annotations

import math
import os
import signal
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

import samples
from media.processes import live_ffmpeg_children, wait_for
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media import FfmpegLimits, classify_ffmpeg_failure, run_ffmpeg
from reelwatch.media.classify import MemoryUse, failure_of_clean_exit
from reelwatch.media.ffmpeg import media_input

LIMITS = FfmpegLimits(stall_timeout_s=30, timeout_s=60)
TEST_PATTERN = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1"]


def failure_of(args: list[str], limits: FfmpegLimits = LIMITS) -> TaskFailure:
    with pytest.raises(TaskFailure) as caught:
        run_ffmpeg(args, duration_s=1.0, limits=limits)
    return caught.value


def test_writing_into_a_missing_folder_is_a_storage_problem(tmp_path: Path) -> None:
    failure = failure_of([*TEST_PATTERN, "-f", "mp4", f"file:{tmp_path}/missing/out.mp4"])
    assert failure.code is FailureCode.STORAGE_UNAVAILABLE
    assert "No such file or directory" in failure.detail


def test_writing_where_permission_is_denied_is_a_storage_problem(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes into any folder, but not into sysfs
        target = Path("/sys/reelwatch-test.mp4")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target = locked / "out.mp4"
    failure = failure_of([*TEST_PATTERN, "-f", "mp4", f"file:{target}"])
    assert failure.code is FailureCode.STORAGE_UNAVAILABLE
    assert "Permission denied" in failure.detail


def test_a_full_disk_is_disk_full() -> None:
    failure = failure_of([*TEST_PATTERN, "-f", "mp4", "file:/dev/full"])
    assert failure.code is FailureCode.DISK_FULL
    assert failure.recoverable


def test_decoding_random_bytes_is_invalid_input(broken_samples: dict[str, Path]) -> None:
    path = broken_samples["random_bytes"]
    failure = failure_of(["-i", f"file:{path}", "-f", "null", "-"])
    assert failure.code is FailureCode.INPUT_INVALID
    assert not failure.recoverable


def test_a_codec_without_decoder_is_unsupported(broken_samples: dict[str, Path]) -> None:
    path = broken_samples["unknown_codec"]
    failure = failure_of(["-i", f"file:{path}", "-f", "null", "-"])
    assert failure.code is FailureCode.INPUT_UNSUPPORTED
    assert "Decoder (codec none) not found" in failure.detail


def test_an_input_that_needs_more_memory_than_the_cap_is_too_large(tmp_path: Path) -> None:
    """Two 4096x4096 frames: tiny on disk, some 400 MB to decode; under a 300 MB cap
    ffmpeg's allocations fail, which no retry can change."""
    huge = samples.make_huge_frames(tmp_path / "huge.mp4")
    decode = [*media_input(huge), "-vf", "scale=64:64", "-f", "null", "-"]
    failure = failure_of(decode, FfmpegLimits(memory_mb=300))
    assert failure.code is FailureCode.INPUT_TOO_LARGE
    assert not failure.recoverable
    assert "300 MB" in failure.message and "Cannot allocate memory" in failure.detail
    run_ffmpeg(decode, duration_s=0.4, limits=FfmpegLimits(memory_mb=1024))  # the cap did it


def test_a_cap_too_small_to_load_ffmpeg_is_our_configuration_not_the_input() -> None:
    failure = failure_of([*TEST_PATTERN, "-f", "null", "-"], FfmpegLimits(memory_mb=64))
    assert failure.code is FailureCode.DEPENDENCY_DOWN
    assert failure.recoverable and "REELWATCH_FFMPEG_MEMORY_MB" in failure.message


def test_ffmpeg_killed_near_its_memory_cap_is_too_large(executor: ThreadPoolExecutor) -> None:
    """What the kernel's OOM killer does to an ffmpeg that holds nearly all it may: a
    SIGKILL with nothing in stderr; its peak address space is the evidence."""
    endless = ["-re", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=60", "-f", "null", "-"]
    steady_mb = _peak_mb_of_running(endless, FfmpegLimits(), executor)
    # The same run under a cap just above what it uses: killed there, it was near the cap.
    capped = FfmpegLimits(memory_mb=math.ceil(steady_mb / 0.95) + 1)
    failure = _failure_when_killed(endless, capped, executor)
    assert failure.code is FailureCode.INPUT_TOO_LARGE, failure.detail
    assert "Cannot allocate" not in failure.detail


def _peak_mb_of_running(
    args: list[str], limits: FfmpegLimits, executor: ThreadPoolExecutor
) -> float:
    running, ffmpeg = _working(args, limits, executor)
    status = Path(f"/proc/{ffmpeg.pid}/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if "VmPeak" in line)
    ffmpeg.kill()
    assert isinstance(running.exception(timeout=20), TaskFailure)
    return peak_kb / 1024


def _failure_when_killed(
    args: list[str], limits: FfmpegLimits, executor: ThreadPoolExecutor
) -> TaskFailure:
    running, ffmpeg = _working(args, limits, executor)
    ffmpeg.kill()
    failure = running.exception(timeout=20)
    assert isinstance(failure, TaskFailure)
    return failure


def _working(
    args: list[str], limits: FfmpegLimits, executor: ThreadPoolExecutor
) -> tuple[Future[object], psutil.Process]:
    """ffmpeg started by ``run_ffmpeg``, once it reported progress twice: its libraries
    are loaded, and run_ffmpeg has looked at it since."""
    reports = threading.Semaphore(0)
    running: Future[object] = executor.submit(
        run_ffmpeg, args, duration_s=60, limits=limits, on_progress=lambda _: reports.release()
    )
    assert reports.acquire(timeout=20) and reports.acquire(timeout=20)
    return running, wait_for(live_ffmpeg_children)[0]


@pytest.mark.parametrize(
    ("sent", "words"),
    [(signal.SIGSEGV, "SIGSEGV"), (signal.SIGKILL, "SIGKILL"), (signal.SIGTERM, "signal")],
)
def test_a_signal_from_outside_is_a_crash(
    sent: signal.Signals, words: str, executor: ThreadPoolExecutor
) -> None:
    endless = ["-re", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=60", "-f", "null", "-"]
    # Signal only once ffmpeg runs its loop, when its own SIGTERM handler is in place.
    working = threading.Event()
    running: Future[object] = executor.submit(
        run_ffmpeg, endless, duration_s=60, limits=LIMITS, on_progress=lambda _: working.set()
    )
    assert working.wait(timeout=20)
    ffmpeg = wait_for(live_ffmpeg_children)[0]
    ffmpeg.send_signal(sent)
    failure = running.exception(timeout=20)
    assert isinstance(failure, TaskFailure)
    assert failure.code is FailureCode.FFMPEG_CRASHED
    assert failure.recoverable
    assert words in failure.message


def test_missing_ffmpeg_is_a_dependency_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    failure = failure_of([*TEST_PATTERN, "-f", "null", "-"])
    assert failure.code is FailureCode.DEPENDENCY_DOWN


def test_negative_exit_status_names_the_signal() -> None:
    failure = classify_ffmpeg_failure(-9, "")
    assert failure.code is FailureCode.FFMPEG_CRASHED and "SIGKILL" in failure.message


@pytest.mark.parametrize(
    ("returncode", "stderr", "memory", "code"),
    [
        (-9, "", MemoryUse(cap_mb=1000, peak_mb=950), FailureCode.INPUT_TOO_LARGE),
        (-9, "", MemoryUse(cap_mb=1000, peak_mb=400), FailureCode.FFMPEG_CRASHED),
        (-9, "", None, FailureCode.FFMPEG_CRASHED),
        (-11, "x264 [error]: malloc of size 21414530 failed", None, FailureCode.INPUT_TOO_LARGE),
        (-6, "[h264] Could not allocate memory", None, FailureCode.INPUT_TOO_LARGE),
        (-11, "[h264] non-existing PPS 0 referenced", None, FailureCode.FFMPEG_CRASHED),
    ],
)
def test_a_killed_ffmpeg_is_too_large_only_on_evidence_of_its_memory_cap(
    returncode: int, stderr: str, memory: MemoryUse | None, code: FailureCode
) -> None:
    assert classify_ffmpeg_failure(returncode, stderr, memory).code is code


@pytest.mark.parametrize(
    ("stderr", "code"),
    [
        ("av_interleaved_write_frame(): No space left on device", FailureCode.DISK_FULL),
        ("out.mp4: Read-only file system", FailureCode.STORAGE_UNAVAILABLE),
        ("Error reading: Input/output error", FailureCode.STORAGE_UNAVAILABLE),
        ("[AVIOContext] Cannot allocate memory", FailureCode.INPUT_TOO_LARGE),
        ("[hls @ 0x55d0] Format not on whitelist 'mov'", FailureCode.INPUT_UNSUPPORTED),
        (
            "ffmpeg: error while loading shared libraries: libx.so: failed to map segment",
            FailureCode.DEPENDENCY_DOWN,
        ),
        ("[mov] moov atom not found", FailureCode.INPUT_INVALID),
        ("[mov] stream 0, offset 0x18b84: partial file", FailureCode.INPUT_INVALID),
        ("Unknown decoder 'foo'", FailureCode.INPUT_UNSUPPORTED),
        ("Conversion failed!", FailureCode.UNKNOWN),
    ],
)
def test_stderr_words_pick_the_code(stderr: str, code: FailureCode) -> None:
    failure = classify_ffmpeg_failure(1, stderr)
    assert failure.code is code
    assert failure.detail == stderr
    assert failure.message and stderr not in failure.message


def test_storage_trouble_outranks_what_ffmpeg_then_says_about_the_input() -> None:
    stderr = "original: Input/output error\noriginal: Invalid data found when processing input"
    assert classify_ffmpeg_failure(1, stderr).code is FailureCode.STORAGE_UNAVAILABLE


def test_a_clean_exit_that_could_not_write_its_trailer_is_a_full_disk() -> None:
    """ffmpeg exits 0 when the disk fills while it finishes the file (found by the chaos
    suite: such outputs were blamed on the input as "the file ends early")."""
    stderr = (
        "Error writing trailer of /media/v/.240p.mp4.1a2b.tmp: No space left on device\n"
        "Error closing file /media/v/.240p.mp4.1a2b.tmp: No space left on device"
    )
    failure = failure_of_clean_exit(stderr)
    assert failure is not None and failure.code is FailureCode.DISK_FULL
    unnamed = failure_of_clean_exit("Error closing file out.mp4: Bad file descriptor")
    assert unnamed is not None and unnamed.code is FailureCode.STORAGE_UNAVAILABLE
    assert failure_of_clean_exit("[h264] non-existing PPS 0 referenced") is None
