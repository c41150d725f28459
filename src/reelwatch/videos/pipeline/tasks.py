"""The video workflow's task handlers: thin steps between the media store and ffmpeg.

Each handler reads its inputs (the original, the probe's output), writes its files
atomically through ``reelwatch.media`` and returns a small JSON output that the
observer turns into the video's row (duration, renditions, thumbnail). Two
``transcode`` tasks share the ladder: ``first`` makes the first playable rendition,
``ladder`` the rest from a single decode; each rendition is an HLS variant and, unless
MP4 downloads are off, an MP4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
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
        info = media.probe_media(original, memory_mb=self.limits.memory_mb)
        self.check_limits(info)
        return asdict(info)

    def check_limits(self, info: media.MediaInfo) -> None:
        """Refuse (``input_too_large``) a video over this service's limits."""
        media.check_limits(
            info,
            max_duration_s=self.settings.max_duration_s,
            max_pixels=self.settings.max_pixels,
            max_frames=self.settings.frame_limit,
        )

    def transcode(self, ctx: TaskContext) -> dict[str, Any]:
        """Renditions of the video, from one decode of its original (or one stream copy):
        the whole ladder, or the ``part`` of it that its params name (``TranscodePart``)."""
        video_id = _video_id(ctx)
        info = _probed(ctx)
        part = transcode_part(info, _ladder(ctx.params), ctx.params.get("part"))
        if not part.plans:
            return {"renditions": [], "skipped": part.skipped}
        try:
            made = media.make_renditions(
                self.store.original_path(video_id),
                part.plans,
                info,
                self.targets(video_id),
                limits=self.limits,
                remux=part.remux,
                keyframes=part.keyframes,
                on_progress=ctx.report_progress,
                cancel=ctx.cancelled,
            )
        except OSError as exc:
            names = ", ".join(plan.name for plan in part.plans)
            raise failure_from_os_error(exc, f"writing the {names} renditions") from exc
        renditions = [
            {
                "rendition": m.plan.name,
                "width": m.plan.width,
                "height": m.plan.height,
                # The size of the very file that was checked and renamed into place (the
                # MP4), or of the HLS variant when there are no MP4 downloads.
                "size_bytes": m.variant.size_bytes if m.mp4_bytes is None else m.mp4_bytes,
                "bandwidth": m.variant.bandwidth,
                "remuxed": part.remux,
            }
            for m in made
        ]
        return {"renditions": renditions, "skipped": part.skipped}

    def targets(self, video_id: str) -> media.Targets:
        return media.Targets(
            mp4_path=lambda name: self.store.rendition_path(video_id, name),
            hls_dir=self.store.hls_dir(video_id),
            keep_mp4=self.settings.mp4_downloads,
        )

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
            produced["rendition"]
            for output in ctx.upstream_outputs().values()
            for produced in rendition_outputs(output)
        ]
        if not renditions:
            raise TaskFailure(FailureCode.UNKNOWN, "no rendition was produced")
        expected = [self.store.thumbnail_path(video_id)]
        if self.settings.mp4_downloads:
            expected += [self.store.rendition_path(video_id, r) for r in renditions]
        expected += self.hls_files(video_id, renditions)
        missing = [path.name for path in expected if not path.is_file()]
        if missing:
            raise TaskFailure(
                FailureCode.STORAGE_UNAVAILABLE, f"files missing from the store: {missing}"
            )
        return {"renditions": renditions}

    def hls_files(self, video_id: str, renditions: list[str]) -> list[Path]:
        """The HLS playlists that must be in place; the master is written once more, so
        it lists every variant whichever transcode task finished last."""
        hls_dir = self.store.hls_dir(video_id)
        media.write_master(hls_dir)
        return [hls_dir / media.MASTER, *(hls_dir / r / media.MEDIA_PLAYLIST for r in renditions)]


@dataclass(frozen=True)
class TranscodePart:
    """What one transcode task makes: ``plans``, by stream copy of the source if
    ``remux``, else encoded with keyframes forced as ``keyframes`` says."""

    plans: list[media.RenditionPlan]
    skipped: list[str]
    remux: bool = False
    keyframes: tuple[str, ...] = media.FORCED_KEYFRAMES


def transcode_part(
    info: media.MediaInfo, ladder: list[tuple[int, bool]], part: str | None
) -> TranscodePart:
    """The renditions of the ``first`` task (the first playable one: the source itself
    when browsers play it as it is, else the lowest rung), of the ``ladder`` task (the
    rest), or, without a part (a workflow planned with one transcode), all of them."""
    plans, skipped = _planned(info, ladder)
    if part is None:
        return TranscodePart(plans, skipped)
    if not media.is_remuxable(info, max(rung for rung, _ in ladder)):
        return (
            TranscodePart(plans[:1], []) if part == "first" else TranscodePart(plans[1:], skipped)
        )
    source = media.source_plan(info)
    if part == "first":
        return TranscodePart([source], [], remux=True)
    # Beside a copied source, segments must start where the source's keyframes are.
    rest = [plan for plan in plans if plan.name != source.name]
    return TranscodePart(rest, skipped, keyframes=media.SOURCE_KEYFRAMES)


def rendition_outputs(output: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The renditions a transcode task's output records, whichever its shape.

    ``{"renditions": [...], "skipped": [...]}`` since one task makes the whole ladder;
    ``{"rendition": name, ...}`` (or ``{"skipped": why}``) from the one-task-per-rung
    workflows that may still be in the database.
    """
    if "renditions" in output:
        return list(output["renditions"])
    return [output] if "rendition" in output else []


def _ladder(params: Mapping[str, Any]) -> list[tuple[int, bool]]:
    """(rung, lowest) pairs from a task's params: ``{"rungs": [...]}``, or the old
    ``{"rung": N, "lowest": bool}`` of a task planned when each rung had its own."""
    if "rungs" in params:
        rungs = list(dict.fromkeys(int(rung) for rung in params["rungs"]))
        return [(rung, rung == min(rungs)) for rung in rungs]
    return [(int(params["rung"]), bool(params["lowest"]))]


def _planned(
    info: media.MediaInfo, ladder: list[tuple[int, bool]]
) -> tuple[list[media.RenditionPlan], list[str]]:
    """The renditions to make, and the names of the rungs skipped rather than upscaled."""
    plans: list[media.RenditionPlan] = []
    skipped: list[str] = []
    for rung, lowest in ladder:
        plan = media.plan_rendition(info, rung, lowest=lowest)
        if plan is None:
            skipped.append(f"{rung}p")
        elif all(plan.name != kept.name for kept in plans):  # rungs 480 and 481: one file
            plans.append(plan)
    return plans, skipped


def _video_id(ctx: TaskContext) -> str:
    if ctx.subject_id is None:
        raise TaskFailure(FailureCode.UNKNOWN, "video task without a video")
    return ctx.subject_id


def _probed(ctx: TaskContext) -> media.MediaInfo:
    return media.MediaInfo(**ctx.upstream_outputs()["probe"])
