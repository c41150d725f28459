"""Turning a failed ffmpeg or ffprobe run into a failure code from the catalog.

The rules read ffmpeg's own words (the stderr tail) and its exit status; the patterns are
those of real runs, captured by the tests in ``tests/media/test_classify.py``.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from reelwatch.failures import FailureCode, TaskFailure


@dataclass(frozen=True)
class _Rule:
    code: FailureCode
    message: str
    patterns: tuple[str, ...]


# Order matters: our own storage trouble outranks what ffmpeg then says about the input.
_RULES = (
    _Rule(
        FailureCode.DISK_FULL,
        "ffmpeg ran out of disk space",
        ("No space left on device", "Disk quota exceeded"),
    ),
    _Rule(
        FailureCode.FFMPEG_CRASHED,
        "ffmpeg ran out of memory",
        ("Cannot allocate memory", "malloc of size", "Out of memory", "failed to map segment"),
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


def classify_ffmpeg_failure(returncode: int, stderr_tail: str) -> TaskFailure:
    """The failure a nonzero exit means; ``detail`` carries the stderr tail as evidence."""
    if returncode < 0:
        return TaskFailure(
            FailureCode.FFMPEG_CRASHED,
            f"ffmpeg was killed by {_signal_name(-returncode)}",
            detail=stderr_tail,
        )
    if returncode == _STOPPED_BY_SIGNAL:
        return TaskFailure(
            FailureCode.FFMPEG_CRASHED, "ffmpeg was stopped by a signal", detail=stderr_tail
        )
    for rule in _RULES:
        if any(pattern in stderr_tail for pattern in rule.patterns):
            return TaskFailure(rule.code, rule.message, detail=stderr_tail)
    return TaskFailure(
        FailureCode.UNKNOWN, f"ffmpeg failed with exit status {returncode}", detail=stderr_tail
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
