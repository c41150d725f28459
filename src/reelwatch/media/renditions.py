"""Planning the renditions of a video and producing them and its thumbnail with ffmpeg.

Every output is written under a temporary name, synced and renamed into place, so a file
under its final name is always complete; a truncated source fails as ``input_invalid``.
"""

from __future__ import annotations

import glob
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media.ffmpeg import FfmpegLimits, FfmpegRun, media_input, media_url, run_ffmpeg
from reelwatch.media.probe import MediaInfo, probe_media
from reelwatch.storage.local import fsync_path

VIDEO_ENCODER_ARGS = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")
AUDIO_ENCODER_ARGS = ("-c:a", "aac", "-b:a", "128k")
# The mov demuxer's words for an index that points past the end of the data.
_TRUNCATION_MARKER = "partial file"
_INPUT_FAILURES = frozenset(
    {FailureCode.INPUT_INVALID, FailureCode.INPUT_NO_VIDEO, FailureCode.INPUT_UNSUPPORTED}
)


@dataclass(frozen=True)
class RenditionPlan:
    name: str
    width: int
    height: int


def plan_rendition(info: MediaInfo, rung: int, *, lowest: bool) -> RenditionPlan | None:
    """The rendition whose short side is ``rung`` pixels, or None rather than upscale.

    The lowest rung is never skipped: a source smaller than it is kept at its own size.
    """
    name = f"{rung}p"
    if min(info.width, info.height) < rung:
        if not lowest:
            return None
        return RenditionPlan(name, _even_floor(info.width), _even_floor(info.height))
    short_side = _even_floor(rung)
    if info.width >= info.height:
        long_side = _scaled_long_side(info.width, info.height, short_side)
        return RenditionPlan(name, long_side, short_side)
    long_side = _scaled_long_side(info.height, info.width, short_side)
    return RenditionPlan(name, short_side, long_side)


def transcode(
    source: Path,
    destination: Path,
    plan: RenditionPlan,
    info: MediaInfo,
    *,
    limits: FfmpegLimits,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Write ``plan`` of ``source`` to ``destination`` as a web-ready H.264/AAC MP4."""
    with _written_atomically(destination) as temporary:
        run = run_ffmpeg(
            _transcode_args(source, temporary, plan, info, limits),
            duration_s=info.duration_s,
            limits=limits,
            on_progress=on_progress,
            cancel=cancel,
        )
        _refuse_truncated_source(run, temporary, info)


def _transcode_args(
    source: Path, output: Path, plan: RenditionPlan, info: MediaInfo, limits: FfmpegLimits
) -> list[str]:
    """ffmpeg arguments for one rendition; the decoder has already turned the picture upright."""
    args = [*_decoder_threads(limits), *media_input(source), "-map", "0:V:0"]
    args += ["-vf", f"scale={plan.width}:{plan.height},setsar=1", *VIDEO_ENCODER_ARGS]
    if info.has_audio:
        args += ["-map", "0:a:0", *AUDIO_ENCODER_ARGS]
    else:
        args += ["-an"]
    # No metadata from the upload (phones record where they were) and no chapters.
    args += ["-map_metadata", "-1", "-map_chapters", "-1"]
    # Sparse audio next to dense video overflows ffmpeg's default muxing queue.
    args += ["-max_muxing_queue_size", "4096", "-movflags", "+faststart"]
    return [*args, *_encoder_threads(limits), "-f", "mp4", media_url(output)]


def make_thumbnail(
    source: Path,
    destination: Path,
    info: MediaInfo,
    *,
    limits: FfmpegLimits,
    width: int = 320,
    cancel: threading.Event | None = None,
) -> None:
    """Write one JPEG frame from early in the video, ``width`` pixels wide at most."""
    thumb_width, thumb_height = thumbnail_size(info, width)
    with _written_atomically(destination) as temporary:
        # A seek past the last frame yields nothing, so fall back to the first frame.
        for seconds in dict.fromkeys((min(info.duration_s * 0.1, 5.0), 0.0)):
            args = _thumbnail_args(source, temporary, seconds, thumb_width, thumb_height, limits)
            run_ffmpeg(args, duration_s=None, limits=limits, cancel=cancel)
            if temporary.exists() and temporary.stat().st_size > 0:
                return
        raise TaskFailure(FailureCode.INPUT_INVALID, "no picture could be decoded from the video")


def thumbnail_size(info: MediaInfo, width: int) -> tuple[int, int]:
    """The thumbnail's even size: ``width`` wide (never wider than the video), same shape."""
    thumb_width = _even_floor(min(width, info.width))
    return thumb_width, _even_round(thumb_width * info.height / info.width)


def verify_rendition(path: Path, plan: RenditionPlan, *, expected_duration_s: float) -> MediaInfo:
    """Probe a finished rendition and raise ``UNKNOWN`` unless it is exactly what was planned."""
    try:
        info = probe_media(path)
    except TaskFailure as exc:
        if exc.code not in _INPUT_FAILURES:
            raise
        raise TaskFailure(
            FailureCode.UNKNOWN,
            f"the {plan.name} rendition is unreadable: {exc.message}",
            detail=exc.detail,
        ) from exc
    problems = _differences(info, plan, expected_duration_s)
    if problems:
        raise TaskFailure(
            FailureCode.UNKNOWN, f"the {plan.name} rendition is wrong: {'; '.join(problems)}"
        )
    return info


def _duration_tolerance(expected_s: float) -> float:
    """How far a rendition's length may drift from the source's: 10 %, at least half a second."""
    return max(0.5, 0.1 * expected_s)


def _differences(info: MediaInfo, plan: RenditionPlan, expected_duration_s: float) -> list[str]:
    problems = []
    if info.video_codec != "h264":
        problems.append(f"codec {info.video_codec}, not h264")
    if (info.width, info.height) != (plan.width, plan.height):
        problems.append(f"{info.width}x{info.height}, not {plan.width}x{plan.height}")
    if info.rotation:
        problems.append(f"it still carries a {info.rotation} degree rotation")
    if abs(info.duration_s - expected_duration_s) > _duration_tolerance(expected_duration_s):
        problems.append(f"it lasts {info.duration_s:.2f} s, not {expected_duration_s:.2f} s")
    return problems


def _refuse_truncated_source(run: FfmpegRun, output: Path, info: MediaInfo) -> None:
    """ffmpeg exits 0 on a truncated file and writes what it could read; that is not a success."""
    if _TRUNCATION_MARKER in run.stderr_tail:
        raise TaskFailure(
            FailureCode.INPUT_INVALID,
            "the file is incomplete: its index lists data that is missing (truncated upload?)",
            detail=run.stderr_tail,
        )
    # The output's own length, not ffmpeg's last out_time: that lags by a few frames,
    # which is seconds for a slow time-lapse.
    transcoded_s = _readable_duration(output)
    if transcoded_s < info.duration_s - _duration_tolerance(info.duration_s):
        raise TaskFailure(
            FailureCode.INPUT_INVALID,
            f"the file ends early: only {transcoded_s:.1f} s of its {info.duration_s:.1f} s "
            "could be read",
            detail=run.stderr_tail,
        )


def _readable_duration(output: Path) -> float:
    """How long the freshly written output lasts; 0 when not even it can be read."""
    try:
        return probe_media(output).duration_s
    except TaskFailure as exc:
        if exc.code not in _INPUT_FAILURES:
            raise
        return 0.0


def _thumbnail_args(
    source: Path, output: Path, seconds: float, width: int, height: int, limits: FfmpegLimits
) -> list[str]:
    # -ss before -i seeks in the input, so nothing before the frame is decoded for output;
    # a raw stream has no timestamps to seek by, and even "-ss 0" loses all its frames.
    seek = ["-ss", f"{seconds:.3f}"] if seconds > 0 else []
    args = [*_decoder_threads(limits), *seek, *media_input(source)]
    args += ["-map", "0:V:0", "-frames:v", "1", "-vf", f"scale={width}:{height},setsar=1"]
    args += ["-c:v", "mjpeg", "-q:v", "3", "-map_metadata", "-1"]
    return [*args, "-f", "image2", "-update", "1", media_url(output)]


def _decoder_threads(limits: FfmpegLimits) -> list[str]:
    return ["-threads", str(limits.threads)] if limits.threads else []


def _encoder_threads(limits: FfmpegLimits) -> list[str]:
    if not limits.threads:
        return []
    return ["-threads", str(limits.threads), "-filter_threads", str(limits.threads)]


@contextmanager
def _written_atomically(destination: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; on success it becomes ``destination``.

    Temporary files of earlier attempts (a worker SIGKILLed mid-write cannot clean up)
    are removed first, so re-runs leave nothing behind.
    """
    for leftover in destination.parent.glob(f".{glob.escape(destination.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        fsync_path(temporary)
        temporary.replace(destination)
        fsync_path(destination.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _scaled_long_side(long_side: int, short_side: int, target_short: int) -> int:
    return min(_even_round(long_side * target_short / short_side), _even_floor(long_side))


def _even_floor(pixels: int) -> int:
    return max(2, pixels - pixels % 2)


def _even_round(pixels: float) -> int:
    return max(2, 2 * round(pixels / 2))
