"""The video workflow's task handlers: thin steps between the media store and ffmpeg.

Each handler reads its inputs (the original, the probe's output) in the store's
workspace, a local folder (the video's own on local disk, a scratch copy when the media
are in a bucket), makes its files there atomically through ``reelwatch.media``,
publishes them to the store (a no-op on local disk), and returns a small JSON output
that the observer turns into the video's row (duration, renditions, thumbnail). Two
``transcode`` tasks share the ladder: ``first`` makes the first playable rendition,
``ladder`` the rest from a single decode; each rendition is an HLS variant and, unless
MP4 downloads are off, an MP4. The task that makes the first playable rendition
publishes its segments while they are encoded (``EarlyPublisher``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from reelwatch import media
from reelwatch.config import Settings
from reelwatch.engine.spec import TaskContext
from reelwatch.failures import FailureCode, TaskFailure, failure_from_os_error
from reelwatch.storage import (
    HLS_FOLDER,
    ORIGINAL,
    THUMBNAIL,
    MediaStore,
    rendition_file,
    walk_files,
)


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
        return {**asdict(info), SPLIT: self.split_ladder(ctx)}

    def split_ladder(self, ctx: TaskContext) -> bool:
        """Whether ``first`` and ``ladder`` share the encoding (``transcode_part``): when
        two workers can take them the moment this probe ends, the video plays and is
        ready sooner; under a queue, one decode for the whole ladder costs less."""
        return ctx.spare_workers(self.settings.queue_for("transcode")) >= 2

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
        """Renditions of the video, from one decode of its original (or one stream copy):
        the whole ladder, or the ``part`` of it that its params name (``TranscodePart``).
        A retry whose renditions were all published already reads them back."""
        video_id = _video_id(ctx)
        info, part = planned_part(ctx)
        if not part.plans:
            return {"renditions": [], "skipped": part.skipped}
        markers = [variant_marker(plan.name) for plan in part.plans]
        if self.settings.mp4_downloads:
            markers += [rendition_file(plan.name) for plan in part.plans]
        if self.already_stored(video_id, markers) is not None:
            made = [self.stored_rendition(video_id, plan) for plan in part.plans]
        else:
            with self.workspace(video_id) as folder:
                made = self._make(ctx, folder, part, info)
                self.publish(video_id, folder, _published_files(folder, made))
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

    def _make(
        self, ctx: TaskContext, folder: Path, part: TranscodePart, info: media.MediaInfo
    ) -> list[media.Made]:
        targets = media.Targets(
            mp4_path=lambda name: folder / rendition_file(name),
            hls_dir=folder / HLS_FOLDER,
            keep_mp4=self.settings.mp4_downloads,
        )
        limits = replace(self.limits, nice=LADDER_NICE) if part.behind_first else self.limits
        early = EarlyPublisher(self, ctx, folder) if part.plays_early else None
        try:
            return media.make_renditions(
                folder / ORIGINAL,
                part.plans,
                info,
                targets,
                limits=limits,
                remux=part.remux,
                keyframes=part.keyframes,
                publish_early=early.publish if early else None,
                on_progress=ctx.report_progress,
                cancel=ctx.cancelled,
            )
        except OSError as exc:
            names = ", ".join(plan.name for plan in part.plans)
            raise failure_from_os_error(exc, f"writing the {names} renditions") from exc

    def stored_rendition(self, video_id: str, plan: media.RenditionPlan) -> media.Made:
        """A rendition an earlier attempt published, as its files in the store say."""
        try:
            variant = media.Variant(
                **json.loads(self.store.read_bytes(video_id, variant_marker(plan.name)))
            )
            sizes = self.store.sizes(video_id, [rendition_file(plan.name)])
        except OSError as exc:
            raise failure_from_os_error(exc, f"reading the {plan.name} rendition") from exc
        return media.Made(plan, variant, sizes.get(rendition_file(plan.name)))

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
        expected = self.expected_files(renditions)
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

    def expected_files(self, renditions: list[str]) -> list[str]:
        """What a ready video's folder holds: the thumbnail, each rendition's HLS variant
        (its marker, published last) and, with downloads on, its MP4."""
        expected = [THUMBNAIL, *(variant_marker(r) for r in renditions)]
        if self.settings.mp4_downloads:
            expected += [rendition_file(r) for r in renditions]
        return expected


class EarlyPublisher:
    """Publishes the first playable rendition's segments while they are encoded, and
    announces the video ``playable`` with the first of them: it plays seconds after
    encoding starts, however long it is."""

    def __init__(self, tasks: VideoTasks, ctx: TaskContext, folder: Path) -> None:
        self.tasks, self.ctx, self.folder = tasks, ctx, folder
        self.announced = False

    def publish(self, plan: media.RenditionPlan, files: list[str], _: media.Variant) -> None:
        video_id = _video_id(self.ctx)
        prefix = f"{HLS_FOLDER}/{plan.name}"
        self.tasks.publish(video_id, self.folder, [f"{prefix}/{name}" for name in files])
        if not self.announced:  # else tried again with the next segment
            data = {"renditions": [plan.name], "while_encoding": True}
            self.announced = self.ctx.checkpoint(PLAYABLE, data)


def variant_marker(name: str) -> str:
    """The file published last of a rendition's HLS variant: once it is in the store,
    the whole variant is."""
    return f"{HLS_FOLDER}/{name}/{media.VARIANT_INFO}"


def _published_files(folder: Path, made: list[media.Made]) -> list[str]:
    """What a transcode task publishes, in an order that makes each rendition whole
    before it is announced: the segments and playlists, then each variant's marker,
    then the MP4s."""
    files: list[str] = []
    for m in made:
        prefix = f"{HLS_FOLDER}/{m.plan.name}"
        inside = [f"{prefix}/{relative}" for relative, _ in walk_files(folder / prefix)]
        marker = variant_marker(m.plan.name)
        files += [relative for relative in inside if relative != marker] + [marker]
    files += [rendition_file(m.plan.name) for m in made if m.mp4_bytes is not None]
    return files


# The checkpoint of a video that can be watched: its first rendition plays.
PLAYABLE = "playable"

# The niceness of a split ladder's ``ladder`` part: while ``first`` runs beside it, the
# cores go to the rendition that makes the video playable (on a machine with nothing
# else to do, niceness changes nothing).
LADDER_NICE = 10


@dataclass(frozen=True)
class TranscodePart:
    """What one transcode task makes: ``plans``, by stream copy of the source if
    ``remux``, else encoded with keyframes forced as ``keyframes`` says; ``behind_first``:
    the rest of a ladder whose first playable rendition is made beside it, which yields
    the cores to it (``LADDER_NICE``)."""

    plans: list[media.RenditionPlan]
    skipped: list[str]
    remux: bool = False
    keyframes: tuple[str, ...] = media.FORCED_KEYFRAMES
    behind_first: bool = False

    @property
    def plays_early(self) -> bool:
        """Whether its first rendition is published while it is encoded: the task makes
        the video's first playable rendition, by encoding (a copy is done in seconds)."""
        return not self.remux and not self.behind_first


def transcode_part(
    info: media.MediaInfo, ladder: list[tuple[int, bool]], part: str | None, split: bool = True
) -> TranscodePart:
    """The renditions of the ``first`` task and of the ``ladder`` task, or, without a
    part (a workflow planned with one transcode), all of them.

    When browsers play the source as it is, ``first`` copies it (no encode: the video
    plays in seconds) and ``ladder`` encodes the rest. Otherwise, ``split``: ``first``
    encodes the lowest rung and ``ladder`` the rest, side by side on two workers; not
    ``split`` (the probe saw a queue): ``ladder`` encodes the whole ladder from one
    decode and ``first`` has nothing to make."""
    plans, skipped = _planned(info, ladder)
    if part is None:
        return TranscodePart(plans, skipped)
    if media.is_remuxable(info, max(rung for rung, _ in ladder)):
        source = media.source_plan(info)
        if part == "first":
            return TranscodePart([source], [], remux=True)
        # Beside a copied source, segments must start where the source's keyframes are.
        rest = [plan for plan in plans if plan.name != source.name]
        return TranscodePart(rest, skipped, keyframes=media.SOURCE_KEYFRAMES, behind_first=True)
    if not split:
        return TranscodePart([], []) if part == "first" else TranscodePart(plans, skipped)
    if part == "first":
        return TranscodePart(plans[:1], [])
    return TranscodePart(plans[1:], skipped, behind_first=True)


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
    return _media_info(ctx.upstream_outputs()["probe"])


def planned_part(ctx: TaskContext) -> tuple[media.MediaInfo, TranscodePart]:
    """The probe's findings and what this transcode task makes of them, from one read of
    the probe's output; a probe from before ``split_ladder`` was chosen: split."""
    probe = ctx.upstream_outputs()["probe"]
    info = _media_info(probe)
    split = bool(probe.get(SPLIT, True))
    return info, transcode_part(info, _ladder(ctx.params), ctx.params.get("part"), split)


def _media_info(output: Mapping[str, Any]) -> media.MediaInfo:
    return media.MediaInfo(**{name: output[name] for name in _MEDIA_FIELDS if name in output})


_MEDIA_FIELDS = tuple(field.name for field in fields(media.MediaInfo))
SPLIT = "split_ladder"  # in the probe's output
