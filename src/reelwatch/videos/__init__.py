"""Videos as users see them: their status lifecycle and the service functions behind the API."""

from reelwatch.videos.status import TERMINAL_STATUSES, VideoStatus

__all__ = ["TERMINAL_STATUSES", "VideoStatus"]
