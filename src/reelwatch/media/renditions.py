"""Planning the renditions of a video and producing them and its thumbnail with ffmpeg.

Every rendition of a video comes from one ffmpeg run that decodes the source once.
Every output is written under a temporary name, probed once, synced and renamed into
place, so a file under its final name is always complete and checked; a truncated
source fails as ``input_invalid``.
"""

from __future__ import annotations

import glob
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media.ffmpeg import FfmpegLimits, FfmpegRun, media_input, media_url, run_ffmpeg
from reelwatch.media.hls import FORCED_KEYFRAMES, MAX_SEGMENT_S, hls_output, tee_slave
from reelwatch.media.probe import MediaInfo, probe_media
from reelwatch.storage.local import fsync_path

VIDEO_ENCODER_ARGS = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")
AUDIO_ENCODER_ARGS = ("-c:a", "aac", "-b:a", "128k")
# The mov demuxer's words for an index that points past the end of the data.
_TRUNCATION_MARKER = "partial file"
# H.264 profiles that every browser's decoder plays.
_BROWSER_PROFILES = frozenset({"Constrained Baseline", "Baseline", "Main", "High"})
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
    A rendition is named by the short side it really has (``360p`` for 640x360 and for a
    vertical 360x640, as players and sites name vertical video), never by the rung that
    asked for it.
    """
    if min(info.width, info.height) < rung:
        if not lowest:
            return None
        return _named(_even_floor(info.width), _even_floor(info.height))
    short_side = _even_floor(rung)
    if info.width >= info.height:
        return _named(_scaled_long_side(info.width, info.height, short_side), short_side)
    return _named(short_side, _scaled_long_side(info.height, info.width, short_side))


def _named(width: int, height: int) -> RenditionPlan:
    return RenditionPlan(f"{min(width, height)}p", width, height)


def transcode(
    source: Path,
    destination: Path,
    plan: RenditionPlan,
    info: MediaInfo,
    *,
    limits: FfmpegLimits,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> MediaInfo:
    """Write ``plan`` of ``source`` to ``destination`` as a web-ready H.264/AAC MP4."""
    (verified,) = transcode_renditions(
        source, [(plan, destination)], info, limits=limits, on_progress=on_progress, cancel=cancel
    )
    return verified


def transcode_renditions(
    source: Path,
    outputs: Sequence[tuple[RenditionPlan, Path]],
    info: MediaInfo,
    *,
    limits: FfmpegLimits,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[MediaInfo]:
    """Decode ``source`` once and write every planned rendition to its path, in one ffmpeg.

    Each output is probed once (``verify_rendition``) while still under its temporary
    name; none is renamed into place unless the run and every check succeeded, so a
    failed or cancelled run leaves neither a new file nor debris. Returns what each
    rendition turned out to be, in the order of ``outputs``.
    """
    if not outputs:
        raise ValueError("no rendition to transcode")
    plans = [plan for plan, _ in outputs]
    with written_atomically(*(destination for _, destination in outputs)) as temporaries:
        return encode_renditions(
            source,
            list(zip(plans, temporaries, strict=True)),
            info,
            limits=limits,
            on_progress=on_progress,
            cancel=cancel,
        )


def encode_renditions(
    source: Path,
    outputs: Sequence[tuple[RenditionPlan, Path]],
    info: MediaInfo,
    *,
    limits: FfmpegLimits,
    keyframes: Sequence[str] = FORCED_KEYFRAMES,
    hls_folders: Sequence[Path] = (),
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[MediaInfo]:
    """Decode ``source`` once, write every planned rendition to its (temporary) path and,
    given ``hls_folders`` (one per output), cut it into its HLS variant as it is encoded;
    check each MP4 (``verify_rendition``). ``keyframes`` says where keyframes are forced."""
    run = run_ffmpeg(
        transcode_args(source, outputs, info, limits, keyframes, hls_folders),
        duration_s=info.duration_s,
        limits=limits,
        on_progress=on_progress,
        cancel=cancel,
    )
    _refuse_truncated_source(run)
    expected_s, evidence = info.duration_s, run.stderr_tail
    return [
        verify_rendition(path, plan, expected_duration_s=expected_s, detail=evidence)
        for plan, path in outputs
    ]


def remux_source(
    source: Path,
    output: Path,
    plan: RenditionPlan,
    info: MediaInfo,
    *,
    limits: FfmpegLimits,
    hls_folder: Path | None = None,
    cancel: threading.Event | None = None,
) -> MediaInfo:
    """Copy the source's picture and sound, untouched, into a faststart MP4 (a source
    that browsers already play: see ``is_remuxable``) and, given ``hls_folder``, into
    its HLS variant; check the MP4 like a rendition."""
    args = [*media_input(source), "-map", "0:V:0"]
    args += ["-map", "0:a:0"] if info.has_audio else ["-an"]
    args += ["-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1"]
    args += containers(output, hls_folder)
    run = run_ffmpeg(args, duration_s=info.duration_s, limits=limits, cancel=cancel)
    _refuse_truncated_source(run)
    return verify_rendition(
        output, plan, expected_duration_s=info.duration_s, detail=run.stderr_tail
    )


def is_remuxable(info: MediaInfo, top_rung: int) -> bool:
    """Whether the source itself plays in every browser as it is (H.264 8-bit 4:2:0 in
    a common profile, AAC or no sound, upright, in MP4, keyframes often enough for
    short segments) and is no larger than the top rung: then its own size is served by
    stream copy, with no encode at all."""
    return (
        info.video_codec == "h264"
        and info.video_profile in _BROWSER_PROFILES
        and info.pixel_format == "yuv420p"
        and (not info.has_audio or info.audio_codec == "aac")
        and info.rotation == 0
        and info.format_name.startswith("mov,mp4")
        and 0 < info.keyframe_gap_s <= MAX_SEGMENT_S
        and min(info.width, info.height) <= top_rung
        and info.width % 2 == 0
        and info.height % 2 == 0
    )


def source_plan(info: MediaInfo) -> RenditionPlan:
    """The rendition that is the source itself, named like any other."""
    return _named(info.width, info.height)


def transcode_args(
    source: Path,
    outputs: Sequence[tuple[RenditionPlan, Path]],
    info: MediaInfo,
    limits: FfmpegLimits,
    keyframes: Sequence[str] = FORCED_KEYFRAMES,
    hls_folders: Sequence[Path] = (),
) -> list[str]:
    """ffmpeg arguments that decode ``source`` once and encode one MP4 per output (and,
    given ``hls_folders``, its HLS variant from the same encode).

    The decoder has already turned the picture upright; ``split`` hands every frame to
    one scaler per rendition, so the decode (a large share of the work) is paid once.
    """
    folders: Sequence[Path | None] = hls_folders or [None] * len(outputs)
    args = [*_decoder_threads(limits), *_filter_threads(limits), *media_input(source)]
    args += ["-filter_complex", _split_graph([plan for plan, _ in outputs])]
    for index, ((_, output), folder) in enumerate(zip(outputs, folders, strict=True)):
        args += _output_args(f"[v{index}]", info, limits, keyframes)
        args += containers(output, folder)
    return args


def _split_graph(plans: Sequence[RenditionPlan]) -> str:
    """``[0:V:0]`` split into one scaled branch ``[v<i>]`` per plan."""
    scalers = [f"scale={plan.width}:{plan.height},setsar=1[v{i}]" for i, plan in enumerate(plans)]
    if len(plans) == 1:
        return f"[0:V:0]{scalers[0]}"
    branches = "".join(f"[s{i}]" for i in range(len(plans)))
    split = f"[0:V:0]split={len(plans)}{branches}"
    return ";".join([split, *(f"[s{i}]{scaler}" for i, scaler in enumerate(scalers))])


def _output_args(
    video: str, info: MediaInfo, limits: FfmpegLimits, keyframes: Sequence[str]
) -> list[str]:
    """One rendition's encoding options: the picture from the graph's ``video`` label,
    with keyframes where HLS segments may start (the same in every rendition)."""
    args = ["-map", video, *VIDEO_ENCODER_ARGS, *keyframes]
    if info.has_audio:
        args += ["-map", "0:a:0", *AUDIO_ENCODER_ARGS]
    else:
        args += ["-an"]
    # No metadata from the upload (phones record where they were) and no chapters.
    args += ["-map_metadata", "-1", "-map_chapters", "-1"]
    # Sparse audio next to dense video overflows ffmpeg's default muxing queue.
    args += ["-max_muxing_queue_size", "4096"]
    return [*args, *_encoder_threads(limits)]


def containers(mp4: Path, hls_folder: Path | None) -> list[str]:
    """Where one output's streams go: a faststart MP4 and, given ``hls_folder``, the
    same packets cut into its HLS variant (``tee``: one encode for both)."""
    if hls_folder is None:
        return ["-movflags", "+faststart", "-f", "mp4", media_url(mp4)]
    mp4_slave = tee_slave({"f": "mp4", "movflags": "+faststart"}, str(mp4.absolute()))
    return ["-f", "tee", f"{mp4_slave}|{hls_output(hls_folder)}"]


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
    with written_atomically(destination) as (temporary,):
        # A seek past the last frame yields nothing, so fall back to the first frame.
        for seconds in dict.fromkeys((min(info.duration_s * 0.1, 5.0), 0.0)):
            args = thumbnail_args(source, temporary, seconds, thumb_width, thumb_height, limits)
            run_ffmpeg(args, duration_s=None, limits=limits, cancel=cancel)
            if temporary.exists() and temporary.stat().st_size > 0:
                return
        raise TaskFailure(FailureCode.INPUT_INVALID, "no picture could be decoded from the video")


def thumbnail_size(info: MediaInfo, width: int) -> tuple[int, int]:
    """The thumbnail's even size: ``width`` wide (never wider than the video), same shape."""
    thumb_width = _even_floor(min(width, info.width))
    return thumb_width, _even_round(thumb_width * info.height / info.width)


def verify_rendition(
    path: Path, plan: RenditionPlan, *, expected_duration_s: float, detail: str = ""
) -> MediaInfo:
    """Probe a freshly written rendition once; raise unless it is exactly what was planned.

    Shorter than the source (or unreadable: nothing could be read) means ffmpeg ran out
    of source before the container said it would: ``INPUT_INVALID``, the upload is at
    fault. The output's own length is the measure, not ffmpeg's last out_time: that lags
    by a few frames, which is seconds for a slow time-lapse. Any other difference (codec,
    size, rotation, too long) is reelwatch's own doing: ``UNKNOWN``. ``detail`` is
    ffmpeg's stderr, kept as evidence.
    """
    try:
        info = probe_media(path, keyframes=False)  # made here: its keyframes are known
    except TaskFailure as exc:
        if exc.code not in _INPUT_FAILURES:
            raise
        raise _ends_early(0.0, expected_duration_s, f"{exc.message}\n{detail}") from exc
    if info.duration_s < expected_duration_s - _duration_tolerance(expected_duration_s):
        raise _ends_early(info.duration_s, expected_duration_s, detail)
    problems = _differences(info, plan, expected_duration_s)
    if problems:
        raise TaskFailure(
            FailureCode.UNKNOWN,
            f"the {plan.name} rendition is wrong: {'; '.join(problems)}",
            detail=detail,
        )
    return info


def _ends_early(read_s: float, expected_s: float, detail: str) -> TaskFailure:
    return TaskFailure(
        FailureCode.INPUT_INVALID,
        f"the file ends early: only {read_s:.1f} s of its {expected_s:.1f} s could be read",
        detail=detail,
    )


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


def _refuse_truncated_source(run: FfmpegRun) -> None:
    """ffmpeg exits 0 on a truncated file and writes what it could read; that is not a success."""
    if _TRUNCATION_MARKER in run.stderr_tail:
        raise TaskFailure(
            FailureCode.INPUT_INVALID,
            "the file is incomplete: its index lists data that is missing (truncated upload?)",
            detail=run.stderr_tail,
        )


def thumbnail_args(
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


def _filter_threads(limits: FfmpegLimits) -> list[str]:
    # A global option: the one graph feeds every rendition.
    return ["-filter_complex_threads", str(limits.threads)] if limits.threads else []


def _encoder_threads(limits: FfmpegLimits) -> list[str]:
    return ["-threads", str(limits.threads)] if limits.threads else []


def temporaries_beside(*destinations: Path) -> list[Path]:
    """A fresh temporary name beside each destination (``.NAME.XXXXXXXX.tmp``), once the
    temporaries of earlier attempts are gone (a worker SIGKILLed mid-write cannot clean
    up, and ``reelwatch gc`` knows the pattern)."""
    for destination in destinations:
        for leftover in destination.parent.glob(f".{glob.escape(destination.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)
    return [
        destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.tmp")
        for destination in destinations
    ]


@contextmanager
def written_atomically(*destinations: Path) -> Iterator[list[Path]]:
    """Yield a temporary path beside each destination; on success each becomes its
    destination, all at the end, and on failure none is left behind.

    Temporary files of earlier attempts (a worker SIGKILLed mid-write cannot clean up)
    are removed first, so re-runs leave nothing behind.
    """
    temporaries = temporaries_beside(*destinations)
    try:
        yield temporaries
        for temporary in temporaries:
            fsync_path(temporary)
        for temporary, destination in zip(temporaries, destinations, strict=True):
            temporary.replace(destination)
        # One sync per folder makes every rename in it durable.
        for folder in dict.fromkeys(destination.parent for destination in destinations):
            fsync_path(folder)
    except BaseException:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise


def _scaled_long_side(long_side: int, short_side: int, target_short: int) -> int:
    return min(_even_round(long_side * target_short / short_side), _even_floor(long_side))


def _even_floor(pixels: int) -> int:
    return max(2, pixels - pixels % 2)


def _even_round(pixels: float) -> int:
    return max(2, 2 * round(pixels / 2))
