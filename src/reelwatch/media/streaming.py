"""Renditions for streaming: each as an HLS variant and, when downloads are on, an MP4.

One ffmpeg run decodes the source once (or copies a browser-ready source without
encoding) and writes every rendition twice from the same packets (``tee``): an MP4 and
its HLS variant, cut into segments as they are encoded. The MP4 is checked; then each
variant gets its VOD playlist and its marker. One variant may be made playable before
the run ends (``EarlyStream``): its segments are published as they are finished.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reelwatch.media.ffmpeg import FfmpegLimits
from reelwatch.media.hls import (
    FORCED_KEYFRAMES,
    EarlyStream,
    Variant,
    finish_variant,
    fresh_folder,
)
from reelwatch.media.probe import MediaInfo
from reelwatch.media.renditions import (
    RenditionPlan,
    encode_renditions,
    remux_source,
    temporaries_beside,
    written_atomically,
)

# Names within the variant folder, and what the master playlist says of it so far.
PublishEarly = Callable[[RenditionPlan, list[str], Variant], None]


@dataclass(frozen=True)
class Made:
    """One rendition made: its plan, its HLS variant, and its MP4's size if kept."""

    plan: RenditionPlan
    variant: Variant
    mp4_bytes: int | None


@dataclass(frozen=True)
class Targets:
    """Where a video's renditions go: MP4 downloads by name, HLS under ``hls_dir``."""

    mp4_path: Callable[[str], Path]
    hls_dir: Path
    keep_mp4: bool


def make_renditions(
    source: Path,
    plans: Sequence[RenditionPlan],
    info: MediaInfo,
    targets: Targets,
    *,
    limits: FfmpegLimits,
    remux: bool = False,
    keyframes: Sequence[str] = FORCED_KEYFRAMES,
    publish_early: PublishEarly | None = None,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Made]:
    """Every plan of ``source`` as an HLS variant (and an MP4); ``remux``: the one plan
    is the source itself, copied rather than encoded. ``publish_early``: the first plan's
    segments are handed to it while they are made. A failed run leaves no variant folder."""
    if not plans:
        raise ValueError("no rendition to make")
    mp4s = [targets.mp4_path(plan.name) for plan in plans]
    folders = [targets.hls_dir / plan.name for plan in plans]
    keep = written_atomically if targets.keep_mp4 else _scratch
    try:
        for folder in folders:
            fresh_folder(folder)
        with keep(*mp4s) as temporaries:
            if remux:
                ((plan, temporary),) = zip(plans, temporaries, strict=True)
                remux_source(
                    source,
                    temporary,
                    plan,
                    info,
                    limits=limits,
                    hls_folder=folders[0],
                    cancel=cancel,
                )
            else:
                early = _early_stream(plans[0], folders[0], info, publish_early)
                encode_renditions(
                    source,
                    list(zip(plans, temporaries, strict=True)),
                    info,
                    limits=limits,
                    keyframes=keyframes,
                    hls_folders=folders,
                    on_progress=_watching(early, on_progress),
                    cancel=cancel,
                )
            variants = [
                _finish(folder, plan, info) for plan, folder in zip(plans, folders, strict=True)
            ]
    except BaseException:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    sizes = [mp4.stat().st_size if targets.keep_mp4 else None for mp4 in mp4s]
    return [Made(*made) for made in zip(plans, variants, sizes, strict=True)]


def _finish(folder: Path, plan: RenditionPlan, info: MediaInfo) -> Variant:
    return finish_variant(folder, plan.name, plan.width, plan.height, info.frame_rate)


def _early_stream(
    plan: RenditionPlan, folder: Path, info: MediaInfo, publish: PublishEarly | None
) -> EarlyStream | None:
    if publish is None:
        return None

    def hand_over(files: list[str], variant: Variant) -> None:
        publish(plan, files, variant)

    return EarlyStream(folder, plan.name, plan.width, plan.height, info.frame_rate, hand_over)


def _watching(
    early: EarlyStream | None, on_progress: Callable[[float], None] | None
) -> Callable[[float], None] | None:
    """``on_progress``, which also publishes the early variant's new segments: ffmpeg
    reports progress about twice a second, so segments go out within half a second."""
    if early is None:
        return on_progress

    def report(fraction: float) -> None:
        early.poll()
        if on_progress is not None:
            on_progress(fraction)

    return report


@contextmanager
def _scratch(*destinations: Path) -> Iterator[list[Path]]:
    """Temporary files beside ``destinations`` that are removed at the end, whatever
    happens: MP4s made only to be checked, when downloads are off. Those of an earlier
    attempt that could not clean up (SIGKILL) go first."""
    temporaries = temporaries_beside(*destinations)
    for temporary in temporaries:
        temporary.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield temporaries
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
