"""The video workflow's task handlers: thin steps between the media store and ffmpeg.

Each handler reads its inputs (the original, the probe's output), writes its file
atomically through ``reelwatch.media`` and returns a small JSON output that the
observer turns into the video's row (duration, renditions, thumbnail).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from reelwatch import media
from reelwatch.config import Settings
from reelwatch.engine.spec import TaskContext
from reelwatch.failures import FailureCode, TaskFailure, failure_from_os_error
from reelwatch.storage import MediaStore


class VideoTasks:
    def __init__(self, settings: Settings, store: MediaStore) -> None:
        self.settings = settings
        self.store = store
        self.limits = media.FfmpegLimits(
            stall_timeout_s=settings.ffmpeg_stall_seconds,
            timeout_s=settings.ffmpeg_timeout_seconds,
            threads=settings.ffmpeg_threads,
            memory_mb=settings.ffmpeg_memory_mb,
        )

    def probe(self, ctx: TaskContext) -> dict[str, Any]:
        original = self.store.original_path(_video_id(ctx))
        try:
            original.stat()
        except OSError as exc:
            raise failure_from_os_error(exc, "reading the original") from exc
        info = media.probe_media(original)
        media.check_limits(
            info, max_duration_s=self.settings.max_duration_s, max_pixels=self.settings.max_pixels
        )
        return asdict(info)

    def transcode(self, ctx: TaskContext) -> dict[str, Any]:
        video_id = _video_id(ctx)
        info = _probed(ctx)
        plan = media.plan_rendition(
            info, int(ctx.params["rung"]), lowest=bool(ctx.params["lowest"])
        )
        if plan is None:
            return {"skipped": f"source is smaller than {ctx.params['rung']}p"}
        destination = self.store.rendition_path(video_id, plan.name)
        try:
            media.transcode(
                self.store.original_path(video_id),
                destination,
                plan,
                info,
                limits=self.limits,
                on_progress=ctx.report_progress,
                cancel=ctx.cancelled,
            )
            media.verify_rendition(destination, plan, expected_duration_s=info.duration_s)
            size = destination.stat().st_size
        except OSError as exc:
            raise failure_from_os_error(exc, f"writing the {plan.name} rendition") from exc
        return {
            "rendition": plan.name,
            "width": plan.width,
            "height": plan.height,
            "size_bytes": size,
        }

    def thumbnail(self, ctx: TaskContext) -> dict[str, Any]:
        video_id = _video_id(ctx)
        destination = self.store.thumbnail_path(video_id)
        try:
            media.make_thumbnail(
                self.store.original_path(video_id),
                destination,
                _probed(ctx),
                limits=self.limits,
                cancel=ctx.cancelled,
            )
            return {"thumbnail_bytes": destination.stat().st_size}
        except OSError as exc:
            raise failure_from_os_error(exc, "writing the thumbnail") from exc

    def finalize(self, ctx: TaskContext) -> dict[str, Any]:
        """Check that every promised file is in place before the video is called ready."""
        video_id = _video_id(ctx)
        renditions = [
            output["rendition"]
            for output in ctx.upstream_outputs().values()
            if "rendition" in output
        ]
        if not renditions:
            raise TaskFailure(FailureCode.UNKNOWN, "no rendition was produced")
        expected = [self.store.rendition_path(video_id, r) for r in renditions]
        expected.append(self.store.thumbnail_path(video_id))
        missing = [path.name for path in expected if not path.is_file()]
        if missing:
            raise TaskFailure(
                FailureCode.STORAGE_UNAVAILABLE, f"files missing from the store: {missing}"
            )
        return {"renditions": renditions}


def _video_id(ctx: TaskContext) -> str:
    if ctx.subject_id is None:
        raise TaskFailure(FailureCode.UNKNOWN, "video task without a video")
    return ctx.subject_id


def _probed(ctx: TaskContext) -> media.MediaInfo:
    return media.MediaInfo(**ctx.upstream_outputs()["probe"])
