"""Admission: what a new upload gets, decided before its body is read.

Active notices come first (the strictest upload policy wins: postponing, then retrying,
then automatic); then the queue: when the expected wait of a new upload (the capacity
estimate, as the monitor last recorded it: ``reelwatch.insights.queue_wait``) exceeds
``REELWATCH_ADMISSION_MAX_WAIT_SECONDS``, the upload is refused with the wait in words
(``REELWATCH_ADMISSION_POLICY=refuse``) or accepted with a warning (``warn``). With no
live worker the wait has no bound and nothing is refused for it: the video is saved, the
admins are alerted, and it is processed when workers are back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from reelwatch.config import Settings
from reelwatch.db.models import Notice
from reelwatch.notices.service import AUTOMATIC, MAINTENANCE, POSTPONING, RETRYING
from reelwatch.timewords import span_in_words

STRICTNESS = {POSTPONING: 0, RETRYING: 1, AUTOMATIC: 2}
UNKNOWN_END_RETRY_S = 600
MIN_RETRY_S, MAX_RETRY_S = 60, 6 * 3600


@dataclass(frozen=True)
class Decision:
    accepted: bool
    message: str | None = None  # why it is refused, or the warning that comes with a 201
    retry_after_s: int | None = None
    hold_until: datetime | None = None  # processing starts then (maintenance)
    tell_when_back: bool = False  # postponing: the uploader gets the "back" e-mail
    code: str = "unavailable"  # the error code of a refusal: unavailable, or overloaded


ACCEPTED = Decision(accepted=True)


def admit_upload(
    active: list[Notice], wait_s: float, settings: Settings, now: datetime
) -> Decision:
    """What an upload gets under the ``active`` notices with a queue wait of ``wait_s``."""
    if active:
        strictest = min(active, key=lambda n: (STRICTNESS[n.uploads], n.starts_at))
        return _under_notice(strictest, now)
    return _by_queue(wait_s, settings)


def _under_notice(notice: Notice, now: datetime) -> Decision:
    until = f" until {notice.ends_at:%Y-%m-%d %H:%M} UTC" if notice.ends_at else ""
    what = "under maintenance" if notice.kind == MAINTENANCE else "having trouble"
    retry_s = (
        _clamp((notice.ends_at - now).total_seconds()) if notice.ends_at else UNKNOWN_END_RETRY_S
    )
    if notice.uploads == RETRYING:
        return Decision(
            False,
            f"reelwatch is {what}{until}: {notice.message} Please upload again "
            f"in {span_in_words(retry_s)}.",
            retry_after_s=retry_s,
        )
    if notice.uploads == POSTPONING:
        return Decision(
            False,
            f"reelwatch is {what}{until}: {notice.message} Your upload was not accepted; "
            "we will e-mail you once when the service is back, so you can upload again.",
            retry_after_s=retry_s,
            tell_when_back=True,
        )
    if notice.kind == MAINTENANCE and notice.ends_at:
        return Decision(
            True,
            f"Saved during maintenance: processing starts when it ends{until}; you will get "
            "an e-mail with the outcome.",
            hold_until=notice.ends_at,
        )
    return Decision(True, f"Saved. {notice.message}")


def _by_queue(wait: float, settings: Settings) -> Decision:
    limit = settings.admission_max_wait_seconds
    if not limit or math.isinf(wait) or wait <= limit:
        return ACCEPTED
    if settings.admission_policy == "warn":
        return Decision(
            True,
            f"Saved. The queue is long: processing should start in {span_in_words(wait)}.",
        )
    retry_s = _clamp(wait - limit)
    return Decision(
        False,
        f"reelwatch is busy: a new upload would wait {span_in_words(wait)} to be processed, "
        f"longer than the {span_in_words(limit)} we accept. Please try again in "
        f"{span_in_words(retry_s)}.",
        retry_after_s=retry_s,
        code="overloaded",
    )


def _clamp(seconds: float) -> int:
    return int(min(MAX_RETRY_S, max(MIN_RETRY_S, math.ceil(seconds))))
