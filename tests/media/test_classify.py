"""classify_ffmpeg_failure on the stderr of real failing ffmpeg runs, and on signals."""

from __future__ import annotations

import os
import signal
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from media.processes import live_ffmpeg_children, wait_for
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media import FfmpegLimits, classify_ffmpeg_failure, run_ffmpeg
from reelwatch.media.classify import failure_of_clean_exit

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


def test_running_out_of_memory_is_a_crash(tmp_path: Path) -> None:
    big = ["-f", "lavfi", "-i", "testsrc2=s=3840x2160:r=25:d=1", "-c:v", "libx264"]
    failure = failure_of(
        [*big, "-f", "mp4", f"file:{tmp_path}/out.mp4"], FfmpegLimits(memory_mb=300)
    )
    assert failure.code is FailureCode.FFMPEG_CRASHED
    assert failure.recoverable


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
    ("stderr", "code"),
    [
        ("av_interleaved_write_frame(): No space left on device", FailureCode.DISK_FULL),
        ("out.mp4: Read-only file system", FailureCode.STORAGE_UNAVAILABLE),
        ("Error reading: Input/output error", FailureCode.STORAGE_UNAVAILABLE),
        ("[AVIOContext] Cannot allocate memory", FailureCode.FFMPEG_CRASHED),
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
