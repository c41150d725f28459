"""The video status lifecycle of SPEC §3."""

from enum import StrEnum


class VideoStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    RETRYING = "retrying"
    READY = "ready"
    FAILED = "failed"


TERMINAL_STATUSES = frozenset({VideoStatus.READY, VideoStatus.FAILED})
