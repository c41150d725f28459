"""The video workflow's task handlers: thin steps between the media store and ffmpeg.

Each handler reads its inputs (the original, the probe's output) in the store's
workspace, a local folder (the video's own on local disk, a scratch copy when the media
are in a bucket), writes its files there atomically through ``reelwatch.media``,
publishes them to the store (a no-op on local disk), and returns a small JSON output that the
observer turns into the video's row (duration, renditions, thumbnail). One
``transcode`` task makes every rendition of the ladder from a single decode.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reelwatch import media
from reelwatch.config import Settings
from reelwatch.engine.spec import TaskContext
from reelwatch.failures import FailureCode, TaskFailure, failure_from_os_error
from reelwatch.storage import ORIGINAL, THUMBNAIL, MediaStore, rendition_file


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
        with self.workspace(_video_id(ctx)) as folder:
            info = media.probe_media(folder / ORIGINAL, memory_mb=self.limits.memory_mb)
        self.check_limits(info)
        return asdict(info)

    @contextmanager
    def workspace(self, video_id: str) -> Iterator[Path]:
        """The store's local folder for the video, holding its original (a copy, when
        the store is a bucket): where the handlers make their files."""
        with ExitStack() as stack:
            try:
                folder = stack.enter_context(self.store.workspace(video_id))
                (folder / ORIGINAL).stat()
            except OSError as exc:
                raise failure_from_os_error(exc, "reading the original") from exc
            yield folder

    def publish(self, video_id: str, folder: Path, relatives: list[str]) -> None:
        try:
            self.store.publish(video_id, folder, relatives)
        except OSError as exc:
            raise failure_from_os_error(exc, f"storing {', '.join(relatives)}") from exc

    def already_stored(self, video_id: str, relatives: list[str]) -> dict[str, int] | None:
        """The sizes of ``relatives`` if every one is in the store (a retry after the
        files were published), else None."""
        try:
            sizes = self.store.sizes(video_id, relatives)
        except OSError as exc:
            raise failure_from_os_error(exc, "listing the video's files") from exc
        return sizes if len(sizes) == len(relatives) else None

    def check_limits(self, info: media.MediaInfo) -> None:
        """Refuse (``input_too_large``) a video over this service's limits."""
        media.check_limits(
            info,
            max_duration_s=self.settings.max_duration_s,
            max_pixels=self.settings.max_pixels,
            max_frames=self.settings.frame_limit,
        )

    def transcode(self, ctx: TaskContext) -> dict[str, Any]:
        """Every planned rendition of the video, from one decode of its original."""
        video_id = _video_id(ctx)
        info = _probed(ctx)
        plans, skipped = _planned(info, _ladder(ctx.params))
        if not plans:
            return {"renditions": [], "skipped": skipped}
        files = [rendition_file(plan.name) for plan in plans]
        stored = self.already_stored(video_id, files)
        if stored is not None:
            sizes = [stored[file] for file in files]
        else:
            with self.workspace(video_id) as folder:
                sizes = self._transcode(ctx, folder, plans, info)
                self.publish(video_id, folder, files)
        renditions = [
            {
                "rendition": plan.name,
                "width": plan.width,
                "height": plan.height,
                # The size of the very file that was checked and renamed into place.
                "size_bytes": size,
            }
            for plan, size in zip(plans, sizes, strict=True)
        ]
        return {"renditions": renditions, "skipped": skipped}

    def _transcode(
        self,
        ctx: TaskContext,
        folder: Path,
        plans: list[media.RenditionPlan],
        info: media.MediaInfo,
    ) -> list[int]:
        outputs = [(plan, folder / rendition_file(plan.name)) for plan in plans]
        try:
            verified = media.transcode_renditions(
                folder / ORIGINAL,
                outputs,
                info,
                limits=self.limits,
                on_progress=ctx.report_progress,
                cancel=ctx.cancelled,
            )
        except OSError as exc:
            names = ", ".join(plan.name for plan in plans)
            raise failure_from_os_error(exc, f"writing the {names} renditions") from exc
        return [written.size_bytes for written in verified]

    def thumbnail(self, ctx: TaskContext) -> dict[str, Any]:
        video_id = _video_id(ctx)
        stored = self.already_stored(video_id, [THUMBNAIL])
        if stored is not None:
            return {"thumbnail_bytes": stored[THUMBNAIL]}
        with self.workspace(video_id) as folder:
            destination = folder / THUMBNAIL
            try:
                media.make_thumbnail(
                    folder / ORIGINAL,
                    destination,
                    _probed(ctx),
                    limits=self.limits,
                    cancel=ctx.cancelled,
                )
                size = destination.stat().st_size
            except OSError as exc:
                raise failure_from_os_error(exc, "writing the thumbnail") from exc
            self.publish(video_id, folder, [THUMBNAIL])
        return {"thumbnail_bytes": size}

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
        expected = [*(rendition_file(r) for r in renditions), THUMBNAIL]
        try:
            stored = self.store.sizes(video_id, expected)
        except OSError as exc:
            raise failure_from_os_error(exc, "listing the video's files") from exc
        missing = [name for name in expected if name not in stored]
        if missing:
            raise TaskFailure(
                FailureCode.STORAGE_UNAVAILABLE, f"files missing from the store: {missing}"
            )
        self.store.release(video_id)  # its local copy, if any: the video is done
        return {"renditions": renditions}


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
