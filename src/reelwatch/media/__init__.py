"""The ffmpeg layer: probing uploads, planning renditions, and running ffmpeg safely.

Everything the pipeline needs is re-exported here; failures come out as ``TaskFailure``
with a code from the catalog, or ``FfmpegCancelled`` when the caller asked ffmpeg to stop.
"""

from reelwatch.media.classify import classify_ffmpeg_failure
from reelwatch.media.ffmpeg import FfmpegCancelled, FfmpegLimits, FfmpegRun, run_ffmpeg
from reelwatch.media.hls import (
    FORCED_KEYFRAMES,
    MASTER,
    MEDIA_PLAYLIST,
    SOURCE_KEYFRAMES,
    VARIANT_INFO,
    Variant,
    master_playlist,
)
from reelwatch.media.probe import MediaInfo, check_limits, probe_media
from reelwatch.media.renditions import (
    RenditionPlan,
    is_remuxable,
    make_thumbnail,
    plan_rendition,
    source_plan,
    transcode,
    transcode_renditions,
    verify_rendition,
)
from reelwatch.media.streaming import Made, Targets, make_renditions

__all__ = [
    "FORCED_KEYFRAMES",
    "MASTER",
    "MEDIA_PLAYLIST",
    "SOURCE_KEYFRAMES",
    "VARIANT_INFO",
    "FfmpegCancelled",
    "FfmpegLimits",
    "FfmpegRun",
    "Made",
    "MediaInfo",
    "RenditionPlan",
    "Targets",
    "Variant",
    "check_limits",
    "classify_ffmpeg_failure",
    "is_remuxable",
    "make_renditions",
    "make_thumbnail",
    "master_playlist",
    "plan_rendition",
    "probe_media",
    "run_ffmpeg",
    "source_plan",
    "transcode",
    "transcode_renditions",
    "verify_rendition",
]
