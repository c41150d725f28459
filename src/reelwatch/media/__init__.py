"""The ffmpeg layer: probing uploads, planning renditions, and running ffmpeg safely.

Everything the pipeline needs is re-exported here; failures come out as ``TaskFailure``
with a code from the catalog, or ``FfmpegCancelled`` when the caller asked ffmpeg to stop.
"""

from reelwatch.media.classify import classify_ffmpeg_failure
from reelwatch.media.ffmpeg import FfmpegCancelled, FfmpegLimits, FfmpegRun, run_ffmpeg
from reelwatch.media.probe import MediaInfo, check_limits, probe_media
from reelwatch.media.renditions import (
    RenditionPlan,
    make_thumbnail,
    plan_rendition,
    transcode,
    transcode_renditions,
    verify_rendition,
)

__all__ = [
    "FfmpegCancelled",
    "FfmpegLimits",
    "FfmpegRun",
    "MediaInfo",
    "RenditionPlan",
    "check_limits",
    "classify_ffmpeg_failure",
    "make_thumbnail",
    "plan_rendition",
    "probe_media",
    "run_ffmpeg",
    "transcode",
    "transcode_renditions",
    "verify_rendition",
]
