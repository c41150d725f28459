"""Turning a failed ffmpeg or ffprobe run into a failure code from the catalog.

The rules read ffmpeg's own words (the stderr tail) and its exit status; the patterns are
those of real runs, captured by the tests in ``tests/media/test_classify.py``.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

from reelwatch.failures import FailureCode, TaskFailure


@dataclass(frozen=True)
class _Rule:
    code: FailureCode
    message: str
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class MemoryUse:
    """The address space ffmpeg was granted (its RLIMIT_AS), and the most it was seen using."""

    cap_mb: int
    peak_mb: float = 0.0

    @property
    def near_cap(self) -> bool:
        return self.peak_mb >= NEAR_CAP * self.cap_mb


# A process this close to its address-space cap was killed for the memory it needed.
NEAR_CAP = 0.9

# What ffmpeg and its libraries say when an allocation fails (ENOMEM): under the
# RLIMIT_AS each ffmpeg runs with, the input needs more memory than a job is granted.
_OUT_OF_MEMORY = ("Cannot allocate memory", "Could not allocate", "malloc of size", "Out of memory")

# The loader's words when the cap is too small to even load ffmpeg's libraries: our
# configuration, not the input.
_CAP_TOO_SMALL_TO_START = "failed to map segment"

_NEEDS_MORE_MEMORY = "the video needs more memory to process than a video may use here"

_NOT_ON_WHITELIST = re.compile(r"\[([\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist")

# Order matters: our own storage trouble outranks what ffmpeg then says about the input.
_RULES = (
    _Rule(
        FailureCode.DISK_FULL,
        "ffmpeg ran out of disk space",
        ("No space left on device", "Disk quota exceeded"),
    ),
    _Rule(
        FailureCode.DEPENDENCY_DOWN,
        "ffmpeg cannot start within its memory limit (REELWATCH_FFMPEG_MEMORY_MB is too low)",
        (_CAP_TOO_SMALL_TO_START,),
    ),
    _Rule(
        FailureCode.INPUT_TOO_LARGE,
        _NEEDS_MORE_MEMORY,
        _OUT_OF_MEMORY,
    ),
    _Rule(
        FailureCode.DEPENDENCY_DOWN,
        "the ffmpeg installation is broken",
        ("error while loading shared libraries",),
    ),
    _Rule(
        FailureCode.STORAGE_UNAVAILABLE,
        "ffmpeg could not read or write the media store",
        (
            "Permission denied",
            "Input/output error",
            "Read-only file system",
            "No such file or directory",
            "Stale file handle",
            "Transport endpoint is not connected",
        ),
    ),
    _Rule(
        FailureCode.INPUT_UNSUPPORTED,
        "the video's codec cannot be decoded here",
        ("Decoder (codec", "Unknown decoder", "unknown codec", "Unsupported codec"),
    ),
    _Rule(
        FailureCode.INPUT_UNSUPPORTED,
        "the file's format is not one this service accepts",
        ("Format not on whitelist",),
    ),
    _Rule(
        FailureCode.INPUT_INVALID,
        "the file is damaged or incomplete",
        (
            "Invalid data found when processing input",
            "moov atom not found",
            "partial file",
            "End of file",
            "corrupt input packet",
            "Invalid NAL unit size",
            "error reading header",
        ),
    ),
)

# ffmpeg catches SIGINT and SIGTERM, stops, and exits with 255; it says so only at the
# info log level, which reelwatch does not print.
_STOPPED_BY_SIGNAL = 255

# What ffmpeg says, at exit status 0, when its output file is incomplete.
_OUTPUT_NOT_WRITTEN = (
    "Error writing trailer",
    "Error closing file",
    "No space left on device",
    "Disk quota exceeded",
)

_NOTABLE = (
    *(pattern for rule in _RULES for pattern in rule.patterns),
    *_OUTPUT_NOT_WRITTEN,
)


def classify_ffmpeg_failure(
    returncode: int, stderr_tail: str, memory: MemoryUse | None = None
) -> TaskFailure:
    """The failure a nonzero exit means; ``detail`` carries the stderr tail as evidence.

    ffmpeg killed by a signal is a crash, retried, unless there is evidence that it ran
    out of the memory it was granted (an allocation failure in its stderr, or a peak
    near the cap): then the input is too large, which no retry can change.
    """
    if returncode < 0 or returncode == _STOPPED_BY_SIGNAL:
        if _ran_out_of_memory(stderr_tail, memory):
            return _too_large_for_memory(stderr_tail, memory)
        how = f"killed by {_signal_name(-returncode)}" if returncode < 0 else "stopped by a signal"
        return TaskFailure(FailureCode.FFMPEG_CRASHED, f"ffmpeg was {how}", detail=stderr_tail)
    refused = _NOT_ON_WHITELIST.search(stderr_tail)
    if refused:
        message = f"the file is in the {refused[1]} format, which this service does not accept"
        return TaskFailure(FailureCode.INPUT_UNSUPPORTED, message, detail=stderr_tail)
    for rule in _RULES:
        if any(pattern in stderr_tail for pattern in rule.patterns):
            if rule.code is FailureCode.INPUT_TOO_LARGE:
                return _too_large_for_memory(stderr_tail, memory)
            return TaskFailure(rule.code, rule.message, detail=stderr_tail)
    return TaskFailure(
        FailureCode.UNKNOWN, f"ffmpeg failed with exit status {returncode}", detail=stderr_tail
    )


def _ran_out_of_memory(stderr_tail: str, memory: MemoryUse | None) -> bool:
    if _CAP_TOO_SMALL_TO_START in stderr_tail:
        return False
    said_so = any(pattern in stderr_tail for pattern in _OUT_OF_MEMORY)
    return said_so or (memory is not None and memory.near_cap)


def _too_large_for_memory(stderr_tail: str, memory: MemoryUse | None) -> TaskFailure:
    granted = f" (ffmpeg memory limit: {memory.cap_mb} MB)" if memory else ""
    return TaskFailure(
        FailureCode.INPUT_TOO_LARGE,
        f"{_NEEDS_MORE_MEMORY}{granted}",
        detail=stderr_tail,
    )


def failure_of_clean_exit(stderr_tail: str) -> TaskFailure | None:
    """ffmpeg exits 0 even when it could not finish writing its output (a full disk
    while it writes the trailer, say); what it says then is the failure, never the
    input's fault."""
    if not any(marker in stderr_tail for marker in _OUTPUT_NOT_WRITTEN):
        return None
    failure = classify_ffmpeg_failure(1, stderr_tail)
    if failure.code in (FailureCode.DISK_FULL, FailureCode.STORAGE_UNAVAILABLE):
        return failure
    message = "ffmpeg could not finish writing its output"
    return TaskFailure(FailureCode.STORAGE_UNAVAILABLE, message, detail=stderr_tail)


def is_notable_stderr_line(line: str) -> bool:
    """Whether a stderr line names a failure cause, so it is kept even when far from the end."""
    return any(pattern in line for pattern in _NOTABLE)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
