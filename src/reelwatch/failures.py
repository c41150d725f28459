"""The failure catalog: every error code a task can end with, and what follows from it.

One table drives retries (attempts and backoff per code: ``RETRY_POLICY``, which the
workflows hand to the engine), what users and admins are told, and ``docs/failures.md``,
which a test keeps identical to ``render_failure_docs()``.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from enum import StrEnum

from reelwatch.engine import failures as engine_failures
from reelwatch.engine.failures import RetryPolicy, RetryRule


class FailureCode(StrEnum):
    INPUT_INVALID = "input_invalid"
    INPUT_NO_VIDEO = "input_no_video"
    INPUT_UNSUPPORTED = "input_unsupported"
    INPUT_TOO_LARGE = "input_too_large"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker_lost"
    FFMPEG_CRASHED = "ffmpeg_crashed"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    DISK_FULL = "disk_full"
    DEPENDENCY_DOWN = "dependency_down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FailureKind:
    """What a failure code means and how reelwatch reacts to it."""

    code: FailureCode
    recoverable: bool
    meaning: str
    user_message: str
    admin_hint: str
    max_attempts: int = 1
    backoff_base_s: float = 0.0
    backoff_max_s: float = 0.0

    @property
    def retry_helps(self) -> bool:
        """Whether running a failed video again could end otherwise: a service failure
        (an outage, a crash) may have passed; a file that is the problem stays one."""
        return self.recoverable

    @property
    def gave_up_message(self) -> str:
        """What a user reads once the video failed for good: for a service failure its
        cause (not the promise of an automatic retry, which is over) and that a retry
        may work; for an input failure the catalog's words, which ask for a new file."""
        if not self.retry_helps:
            return self.user_message
        cause = self.user_message.split(". ", 1)[0].rstrip(".")
        return f"{cause}. We tried several times and stopped; {RETRY_MAY_HELP}."

    @property
    def rule(self) -> RetryRule:
        """This code's rule, as the engine applies it."""
        return RetryRule(
            self.recoverable, self.max_attempts, self.backoff_base_s, self.backoff_max_s
        )

    def retry_delay(self, attempt: int, scale: float = 1.0) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``RetryRule.retry_delay``)."""
        return self.rule.retry_delay(attempt, scale)


# Why a video failed, for the admin's figures: the user's file (``input``, customer
# activity) or the service itself (``service``, something to fix). Every ``input_*`` code
# is the file's fault; any other code, or one this release does not know, is the service's.
INPUT, SERVICE = "input", "service"
CAUSES = (SERVICE, INPUT)


def failure_cause(code: str | None) -> str:
    """``input`` for a code that blames the uploaded file, else ``service``."""
    return INPUT if (code or "").startswith("input_") else SERVICE


# Why a failed video may or may not be run again (the API's 409, the page, the CLI).
RETRY_CANNOT_HELP = "the file itself is the problem: upload a new file"
RETRY_MAY_HELP = "your video is saved and you can retry it from its page"


def retry_refusal(code: str | None) -> str | None:
    """Why retrying a video that failed with ``code`` cannot help, or None if it may.
    A code this release does not know (a row from another version) may be retried."""
    try:
        kind = CATALOG[FailureCode(code or "")]
    except ValueError:
        return None
    return None if kind.retry_helps else RETRY_CANNOT_HELP


# However its failures are spread over kinds, a task is tried at most this often.
MAX_ATTEMPTS = 20
_PERMANENT = "Permanent: the upload itself is the problem, so retrying cannot help."

CATALOG: dict[FailureCode, FailureKind] = {
    kind.code: kind
    for kind in (
        FailureKind(
            FailureCode.INPUT_INVALID,
            recoverable=False,
            meaning="Not a readable media file: empty, random bytes, text, truncated, "
            "or an MP4 whose index (moov atom) is missing.",
            user_message="The file you uploaded is not a video we can read. It may be "
            "damaged or incomplete; please export it again and upload the new file.",
            admin_hint=_PERMANENT,
        ),
        FailureKind(
            FailureCode.INPUT_NO_VIDEO,
            recoverable=False,
            meaning="The file is media but has no moving picture: audio only, or a still image.",
            user_message="The file you uploaded has no video track (it is audio only or a "
            "still image). Please upload a video file.",
            admin_hint=_PERMANENT,
        ),
        FailureKind(
            FailureCode.INPUT_UNSUPPORTED,
            recoverable=False,
            meaning="A video stream whose codec this server's ffmpeg cannot decode, or a "
            "container outside the accepted formats (playlists such as HLS or ffconcat, "
            "image sequences: formats that read other files).",
            user_message="Your video uses a format we cannot process. Please convert it to "
            "MP4 (H.264) and upload it again.",
            admin_hint=_PERMANENT + " If the format is common, consider an ffmpeg build that "
            "decodes it.",
        ),
        FailureKind(
            FailureCode.INPUT_TOO_LARGE,
            recoverable=False,
            meaning="Over a configured limit: bytes (REELWATCH_MAX_UPLOAD_MB), duration "
            "(REELWATCH_MAX_DURATION_S), pixels per frame as stored or as shown "
            "(REELWATCH_MAX_PIXELS), frames (REELWATCH_MAX_FRAMES), or memory: ffmpeg "
            "ran out of its REELWATCH_FFMPEG_MEMORY_MB on this input.",
            user_message="Your video is larger than this service accepts (file size, length, "
            "resolution, frame count or the memory it takes to process). Please upload a "
            "shorter or smaller version.",
            admin_hint=_PERMANENT + " Raise the limit if such videos should be accepted.",
        ),
        FailureKind(
            FailureCode.TIMEOUT,
            recoverable=True,
            meaning="ffmpeg made no progress for REELWATCH_FFMPEG_STALL_SECONDS, or ran "
            "past REELWATCH_FFMPEG_TIMEOUT_SECONDS, and was killed.",
            user_message="Processing your video took too long. It is saved and will be "
            "retried automatically.",
            admin_hint="Look for an overloaded node or a pathological input; the stderr "
            "tail is on the failure event.",
            max_attempts=3,
            backoff_base_s=60,
            backoff_max_s=600,
        ),
        FailureKind(
            FailureCode.WORKER_LOST,
            recoverable=True,
            meaning="The worker running the task stopped heartbeating (killed, crashed, "
            "machine gone) and its lease of REELWATCH_LEASE_SECONDS expired.",
            user_message="The machine processing your video stopped. It is saved and "
            "processing resumes automatically.",
            admin_hint="A worker died; check why (out of memory, restarts) if this repeats.",
            max_attempts=5,
            backoff_base_s=0,
            backoff_max_s=0,
        ),
        FailureKind(
            FailureCode.FFMPEG_CRASHED,
            recoverable=True,
            meaning="ffmpeg was killed by a signal (a segfault, a kill from outside) "
            "without evidence that it ran out of its memory limit.",
            user_message="Our video converter crashed while processing your video. It is "
            "saved and will be retried automatically.",
            admin_hint="Check memory pressure and the stderr tail on the failure event.",
            max_attempts=3,
            backoff_base_s=30,
            backoff_max_s=300,
        ),
        FailureKind(
            FailureCode.STORAGE_UNAVAILABLE,
            recoverable=True,
            meaning="The media store could not be read or written (missing mount, I/O or "
            "permission error).",
            user_message="Our storage is temporarily unavailable. Your video is saved and "
            "will be processed automatically when it is back.",
            admin_hint="Check the media store (REELWATCH_HOME/media): mount, permissions.",
            max_attempts=10,
            backoff_base_s=30,
            backoff_max_s=1800,
        ),
        FailureKind(
            FailureCode.DISK_FULL,
            recoverable=True,
            meaning="No space left on the device holding the media store or temporary files.",
            user_message="Our servers are short of disk space. Your video is saved and will "
            "be processed automatically.",
            admin_hint="Free disk space under REELWATCH_HOME (reelwatch gc) or grow the volume.",
            max_attempts=10,
            backoff_base_s=60,
            backoff_max_s=1800,
        ),
        FailureKind(
            FailureCode.DEPENDENCY_DOWN,
            recoverable=True,
            meaning="A service the task needs (database, ffmpeg binary, mail) is unavailable.",
            user_message="A service we depend on is down. Your video is saved and will be "
            "processed automatically when it is back.",
            admin_hint="See which component is down in the task's failure message.",
            max_attempts=10,
            backoff_base_s=30,
            backoff_max_s=1800,
        ),
        FailureKind(
            FailureCode.UNKNOWN,
            recoverable=True,
            meaning="Anything unexpected: an unclassified ffmpeg error or a bug.",
            user_message="Something unexpected went wrong while processing your video. It "
            "is saved and will be retried automatically.",
            admin_hint="Unexpected: read the message and stderr tail on the failure event, "
            "and report a bug if it is reelwatch's.",
            max_attempts=3,
            backoff_base_s=60,
            backoff_max_s=600,
        ),
    )
}


# A dependency being down: its tasks wait for it, and are woken when it is back.
DEPENDENCY_CODES = (
    FailureCode.STORAGE_UNAVAILABLE,
    FailureCode.DISK_FULL,
    FailureCode.DEPENDENCY_DOWN,
)


class TaskFailure(engine_failures.TaskFailure):
    """The engine's ``TaskFailure`` with a catalog code; ``kind`` is its catalog entry.

    ``detail`` carries evidence for admins (an ffmpeg stderr tail), never shown to users.
    """

    code: FailureCode

    def __init__(self, code: FailureCode, message: str, *, detail: str = "") -> None:
        super().__init__(code, message, detail=detail)

    @property
    def kind(self) -> FailureKind:
        return CATALOG[self.code]

    def without_paths(self) -> TaskFailure:
        """This failure as users may see it: no server path in its message or detail."""
        return TaskFailure(
            self.code, without_paths(self.message), detail=without_paths(self.detail)
        )

    @property
    def recoverable(self) -> bool:
        return self.kind.recoverable


def catalog_failure(failure: engine_failures.TaskFailure) -> TaskFailure:
    """``failure`` as the catalog knows it (the engine raises its own ``timeout``,
    ``worker_lost`` and ``unknown``; a code the catalog lacks reads as ``unknown``)."""
    if isinstance(failure, TaskFailure):
        return failure
    code = failure.code if failure.code in CATALOG else FailureCode.UNKNOWN
    return TaskFailure(FailureCode(code), failure.message, detail=failure.detail)


# An absolute path, with ffmpeg's "file:" prefix. Folders may hold spaces (a
# REELWATCH_HOME in "/srv/My Videos"); the last part ends at a space, quote or colon.
_PATH_PART = r"[^\s'\"<>|:,;()\[\]/]+"
_ABSOLUTE_PATH = re.compile(
    rf"(?<![\w.~:/-])(?:file:)?(?:/{_PATH_PART}(?: {_PATH_PART})*(?=/))*/{_PATH_PART}"
)
# The name under which an output is written before it is renamed into place.
_TEMPORARY_NAME = re.compile(r"\.(.+)\.[0-9a-f]+\.tmp")


def without_paths(text: str) -> str:
    """``text`` (an ffmpeg stderr tail, an exception) with every absolute path replaced
    by a neutral name: ``input`` for the upload, the bare file name for anything else.

    Failure texts reach users (events, the video's error, e-mails); where the server
    keeps its files is none of their business. Logs keep the full text.
    """
    return _ABSOLUTE_PATH.sub(_neutral_name, text)


def _neutral_name(path: re.Match[str]) -> str:
    last = path[0].rsplit("/", 1)[-1]
    name = last.rstrip(".")  # a sentence's full stop after a path is not part of it
    full_stop = last[len(name) :]
    if name == "original":  # the media store keeps every upload under this name
        return f"input{full_stop}"
    temporary = _TEMPORARY_NAME.fullmatch(name)
    return f"{temporary[1] if temporary else name}{full_stop}"


_FFMPEG_RULES = (
    "## How a failed ffmpeg run is classified",
    "",
    "ffmpeg and ffprobe run with an address-space limit (`RLIMIT_AS`) of",
    "REELWATCH_FFMPEG_MEMORY_MB. Their failures are read from their exit status and",
    "stderr, in this order:",
    "",
    "1. Killed by a signal (or stopped, exit status 255): `input_too_large` when there is",
    "   evidence that the input needed more memory than the limit (an allocation failure",
    "   in stderr: `Cannot allocate memory`, `malloc of size ... failed`, ..., or a peak",
    "   address space, the kernel's VmPeak sampled while it ran, of 90 % of the limit or",
    "   more); otherwise `ffmpeg_crashed`, retried: a kill from outside or a segfault",
    "   far from the limit is not the input's fault.",
    "2. `Format not on whitelist`: `input_unsupported` (the container is outside the",
    "   accepted demuxers).",
    "3. Words in stderr, first match wins: a full disk (`disk_full`); the loader unable",
    "   to map ffmpeg's libraries within the limit (`dependency_down`: the limit is set",
    "   too low); an allocation failure (`input_too_large`, as above); a broken ffmpeg",
    "   install (`dependency_down`); media store errors (`storage_unavailable`); no",
    "   decoder (`input_unsupported`); damaged input (`input_invalid`).",
    "4. Anything else: `unknown`.",
    "",
    "Messages and details recorded for users (events, the video's error, e-mails) have",
    "every absolute path replaced by a neutral name (`input` for the upload, the bare",
    "file name otherwise); the worker's log keeps the full text.",
)


def render_failure_docs() -> str:
    """The failure catalog as Markdown: the source of ``docs/failures.md``."""
    lines = [
        "# Failure catalog",
        "",
        "Every failed or retried task carries one of these codes in `error.code`. This file",
        "is generated from `src/reelwatch/failures.py` by",
        "`reelwatch failures --output docs/failures.md`; a test fails when the two differ.",
        "",
        "Recoverable failures are retried automatically with exponential backoff and",
        "jitter: the wait before attempt *n + 1* is between half and all of",
        "`min(max, base * 2^(n-1))`. Each code has its own budget of attempts (three full",
        "disks do not use up the retries of a killed worker), within "
        f"{MAX_ATTEMPTS} attempts in all;",
        "when a budget is used up the video fails with that code. Permanent failures are",
        "never retried.",
        "",
        "A failed video can be run again (`reelwatch retry ID`, the Retry button on its",
        "page, `POST /api/v1/videos/{id}/retry`, `reelwatch retry --code CODE`) only when",
        "its code is recoverable: a service failure may have passed. A permanent input",
        "failure answers 409 `not_retryable` with the reason "
        f'("{RETRY_CANNOT_HELP}"), and the page',
        "shows no Retry button: the same file would fail the same way.",
        "",
        "| code | recoverable | attempts | backoff base / max | meaning |",
        "|---|---|---|---|---|",
    ]
    for kind in CATALOG.values():
        backoff = (
            f"{kind.backoff_base_s:g} s / {kind.backoff_max_s:g} s" if kind.recoverable else "—"
        )
        lines.append(
            f"| `{kind.code.value}` | {'yes' if kind.recoverable else 'no'} | "
            f"{kind.max_attempts} | {backoff} | {kind.meaning} |"
        )
    lines += ["", *_FFMPEG_RULES, "", "## What people are told", ""]
    for kind in CATALOG.values():
        lines += [
            f"### `{kind.code.value}`",
            "",
            f"- **User:** {kind.user_message}",
            f"- **Admin:** {kind.admin_hint}",
            "",
        ]
    return "\n".join(lines)


def failure_from_os_error(exc: OSError, doing: str) -> TaskFailure:
    """Classify a file-system error met while ``doing`` something with the media store."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return TaskFailure(FailureCode.DISK_FULL, f"no space left while {doing}", detail=str(exc))
    return TaskFailure(
        FailureCode.STORAGE_UNAVAILABLE,
        f"media store error while {doing}: {exc.strerror}",
        detail=str(exc),
    )


# What the engine applies to reelwatch's workflows: the catalog's rules, and no server
# path in what is recorded.
RETRY_POLICY = RetryPolicy(
    rules={code.value: kind.rule for code, kind in CATALOG.items()},
    default=CATALOG[FailureCode.UNKNOWN].rule,
    max_attempts=MAX_ATTEMPTS,
    dependency_codes=frozenset(code.value for code in DEPENDENCY_CODES),
    redact=without_paths,
)
