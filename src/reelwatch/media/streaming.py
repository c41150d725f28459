"""Renditions for streaming: each as an HLS variant and, when downloads are on, an MP4.

One ffmpeg run decodes the source once and encodes every rendition to an MP4 (or one
run copies a browser-ready source without encoding); each MP4 is checked, cut into its
HLS variant by stream copy, and either renamed into place for download or dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reelwatch.media.ffmpeg import FfmpegLimits
from reelwatch.media.hls import FORCED_KEYFRAMES, Variant, package_variant
from reelwatch.media.probe import MediaInfo
from reelwatch.media.renditions import (
    RenditionPlan,
    encode_renditions,
    remux_source,
    temporaries_beside,
    written_atomically,
)


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
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Made]:
    """Every plan of ``source`` as an HLS variant (and an MP4); ``remux``: the one plan
    is the source itself, copied rather than encoded."""
    if not plans:
        raise ValueError("no rendition to make")
    mp4s = [targets.mp4_path(plan.name) for plan in plans]
    keep = written_atomically if targets.keep_mp4 else _scratch
    with keep(*mp4s) as temporaries:
        outputs = list(zip(plans, temporaries, strict=True))
        if remux:
            ((plan, temporary),) = outputs
            remux_source(source, temporary, plan, info, limits=limits, cancel=cancel)
        else:
            encode_renditions(
                source,
                outputs,
                info,
                limits=limits,
                keyframes=keyframes,
                on_progress=on_progress,
                cancel=cancel,
            )
        made = [
            Made(plan, _package(temporary, plan, info, targets.hls_dir, limits, cancel), None)
            for plan, temporary in outputs
        ]
    if targets.keep_mp4:
        made = [
            Made(m.plan, m.variant, mp4.stat().st_size) for m, mp4 in zip(made, mp4s, strict=True)
        ]
    return made


def _package(
    mp4: Path,
    plan: RenditionPlan,
    info: MediaInfo,
    hls_dir: Path,
    limits: FfmpegLimits,
    cancel: threading.Event | None,
) -> Variant:
    return package_variant(
        mp4,
        hls_dir / plan.name,
        width=plan.width,
        height=plan.height,
        frame_rate=info.frame_rate,
        has_audio=info.has_audio,
        limits=limits,
        cancel=cancel,
    )


@contextmanager
def _scratch(*destinations: Path) -> Iterator[list[Path]]:
    """Temporary files beside ``destinations`` that are removed at the end, whatever
    happens: MP4s made only to be cut into HLS, when downloads are off. Those of an
    earlier attempt that could not clean up (SIGKILL) go first."""
    temporaries = temporaries_beside(*destinations)
    for temporary in temporaries:
        temporary.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield temporaries
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
