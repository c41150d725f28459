"""Reading what an uploaded file is with ffprobe, and refusing what reelwatch cannot process.

``probe_media`` turns ffprobe's JSON into a ``MediaInfo`` or a permanent input failure
(invalid, no video, unsupported); ``check_limits`` enforces the duration, pixel and frame
limits.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from reelwatch.failures import FailureCode, TaskFailure, failure_from_os_error
from reelwatch.media.classify import MemoryUse, classify_ffmpeg_failure
from reelwatch.media.ffmpeg import (
    DEFAULT_MEMORY_MB,
    FFPROBE,
    STDERR_TAIL_BYTES,
    child_environment,
    child_preexec,
    media_input,
)

# ffmpeg's demuxers for ANSI art and plain text: they "decode" any text file as video.
_TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
# Playlists and session descriptions: text naming other files or URLs, never an upload.
_REFERENCE_FORMATS = frozenset({"hls", "dash", "concat", "sdp", "rtp", "rtsp", "ffmetadata"})

Json = dict[str, Any]


@dataclass(frozen=True)
class MediaInfo:
    """What the rest of reelwatch needs to know about a video; sizes are as displayed."""

    duration_s: float
    width: int  # as displayed: square pixels, after the rotation
    height: int
    rotation: int  # 0, 90, 180 or 270: the clockwise turn players apply to the stored picture
    video_codec: str  # ffprobe's codec name, e.g. "h264"
    has_audio: bool  # a sound track this ffmpeg can decode
    frame_rate: float | None  # the average, for variable frame rates
    format_name: str  # ffprobe's container name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    size_bytes: int
    # What decoding costs, whatever the display: the stored frame (the larger of ffprobe's
    # width and coded_width, so a tiny pixel aspect ratio cannot hide a huge frame) and
    # the number of frames. 0 in probe outputs recorded before they were measured.
    coded_width: int = 0
    coded_height: int = 0
    frame_count: int = 0
    # What decides whether the source can be served as it is (HLS by stream copy);
    # "" in probe outputs recorded before they were kept.
    video_profile: str = ""  # ffprobe's words, e.g. "High", "Constrained Baseline"
    pixel_format: str = ""  # e.g. "yuv420p"
    audio_codec: str = ""  # the first sound track's codec (the one encodes map), e.g. "aac"
    # The longest stretch without a keyframe (the last one to the end included): how
    # long HLS segments of the source copied would be. Measured only for an H.264 MP4
    # (0.0 otherwise, and in outputs recorded before it was).
    keyframe_gap_s: float = 0.0


def probe_media(
    path: Path,
    *,
    timeout_s: float = 60,
    memory_mb: int = DEFAULT_MEMORY_MB,
    keyframes: bool = True,
) -> MediaInfo:
    """Probe ``path``; raise ``TaskFailure`` when it is not a video reelwatch can process.

    ffprobe runs with ``memory_mb`` of address space, like ffmpeg (``FfmpegLimits``).
    ``keyframes``: measure an H.264 MP4's keyframe gap (a second ffprobe that reads
    every packet), which only decides whether a source can be copied as it is.
    """
    size_bytes = _size_of(path)
    if size_bytes == 0:
        raise TaskFailure(FailureCode.INPUT_INVALID, "the file is empty")
    report = _run_ffprobe(path, timeout_s, memory_mb)
    if not _states_a_duration(report):
        report = _with_measured_duration(report, path, timeout_s, memory_mb)
    info = media_info_from_report(report, size_bytes)
    if keyframes and info.video_codec == "h264" and info.format_name.startswith("mov,mp4"):
        gap_s = _keyframe_gap(path, info.duration_s, timeout_s, memory_mb)
        info = replace(info, keyframe_gap_s=gap_s)
    return info


def check_limits(
    info: MediaInfo, *, max_duration_s: float, max_pixels: int, max_frames: int
) -> None:
    """Raise ``INPUT_TOO_LARGE`` when the video is longer, has larger frames (as stored
    or as shown) or more frames than allowed; the message names the limit crossed."""
    if info.duration_s > max_duration_s:
        raise TaskFailure(
            FailureCode.INPUT_TOO_LARGE,
            f"the video lasts {_clock(info.duration_s)}, longer than the limit of "
            f"{_clock(max_duration_s)} (max duration)",
        )
    # Decoding costs the stored frame, scaling and encoding the shown one.
    pixels = max(info.width * info.height, info.coded_width * info.coded_height)
    if pixels > max_pixels:
        raise TaskFailure(
            FailureCode.INPUT_TOO_LARGE,
            f"the video's frames are {_frame_size(info)} ({_pixels(pixels)}), "
            f"more than the limit of {_pixels(max_pixels)} (max pixels)",
        )
    if info.frame_count > max_frames:
        raise TaskFailure(
            FailureCode.INPUT_TOO_LARGE,
            f"the video has {info.frame_count} frames{_per_second(info.frame_rate)}, "
            f"more than the limit of "
            f"{max_frames} frames (max frames)",
        )


def media_info_from_report(report: Json, size_bytes: int) -> MediaInfo:
    """Judge ffprobe's ``-show_format -show_streams`` report of one file."""
    container = report.get("format") or {}
    streams: list[Json] = report.get("streams") or []
    format_name = str(container.get("format_name") or "")
    if format_name in _TEXT_FORMATS:
        raise TaskFailure(FailureCode.INPUT_INVALID, "the file is text, not media")
    if format_name in _REFERENCE_FORMATS:
        raise TaskFailure(
            FailureCode.INPUT_UNSUPPORTED, f"the file is a {format_name} playlist, not a video"
        )
    pictures = [s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)]
    if not pictures:
        raise _no_video_failure(streams)
    video = pictures[0]  # the stream ffmpeg's "0:V:0" selects when transcoding
    if _is_still_image(format_name, video):
        raise TaskFailure(FailureCode.INPUT_NO_VIDEO, "the file is a still image, not a video")
    codec = _decodable_video_codec(video)
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise TaskFailure(FailureCode.INPUT_INVALID, "the video stream has no picture size")
    rotation = _rotation_of(video)
    display_width, display_height = _display_size(width, height, video, rotation)
    duration_s = _duration_of(container, streams, video)
    return MediaInfo(
        duration_s=duration_s,
        width=display_width,
        height=display_height,
        rotation=rotation,
        video_codec=codec,
        has_audio=any(_is_decodable_audio(s) for s in streams),
        frame_rate=_frame_rate(video),
        format_name=format_name,
        size_bytes=size_bytes,
        coded_width=max(width, int(video.get("coded_width") or 0)),
        coded_height=max(height, int(video.get("coded_height") or 0)),
        frame_count=_frame_count(video, duration_s),
        video_profile=str(video.get("profile") or ""),
        pixel_format=str(video.get("pix_fmt") or ""),
        audio_codec=next(
            (str(s.get("codec_name") or "") for s in streams if s.get("codec_type") == "audio"), ""
        ),
    )


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise failure_from_os_error(exc, "reading the original") from exc


def _run_ffprobe(path: Path, timeout_s: float, memory_mb: int) -> Json:
    command = [FFPROBE, "-v", "error", "-of", "json", "-show_format", "-show_streams"]
    result = _run_guarded([*command, *media_input(path)], timeout_s, memory_mb)
    stderr = result.stderr.decode("utf-8", "replace")[-STDERR_TAIL_BYTES:]
    if result.returncode != 0:
        raise _probe_failure(result.returncode, stderr, memory_mb)
    try:
        report = json.loads(result.stdout.decode("utf-8", "replace"))
    except ValueError as exc:
        raise TaskFailure(
            FailureCode.UNKNOWN, "ffprobe's report could not be read", detail=stderr
        ) from exc
    if not isinstance(report, dict):
        raise TaskFailure(FailureCode.UNKNOWN, "ffprobe's report is not an object", detail=stderr)
    return report


def _states_a_duration(report: Json) -> bool:
    sections = [report.get("format") or {}, *(report.get("streams") or [])]
    return any(_positive_float(section.get("duration")) is not None for section in sections)


def _with_measured_duration(report: Json, path: Path, timeout_s: float, memory_mb: int) -> Json:
    """Live recordings (a browser's WebM) and raw streams (a camera's .h264) state no
    duration; measure it from the packets' timestamps, or add up their durations."""
    command = [FFPROBE, "-v", "error", "-of", "compact"]
    command += ["-show_entries", "packet=stream_index,pts_time,duration_time"]
    result = _run_guarded([*command, *media_input(path)], timeout_s, memory_mb)
    if result.returncode != 0:
        return report
    seconds = _longest_stream(result.stdout.decode("utf-8", "replace").splitlines())
    if seconds is None:
        return report
    return {**report, "format": {**(report.get("format") or {}), "duration": seconds}}


def _keyframe_gap(path: Path, duration_s: float, timeout_s: float, memory_mb: int) -> float:
    """The longest time between keyframes of the picture, from its packets' flags (the
    file is read, nothing is decoded); 0.0 when it cannot be told."""
    command = [FFPROBE, "-v", "error", "-select_streams", "V:0", "-of", "csv=p=0"]
    command += ["-show_entries", "packet=pts_time,flags"]
    result = _run_guarded([*command, *media_input(path)], timeout_s, memory_mb)
    if result.returncode != 0:
        return 0.0
    keyframes = []
    for line in result.stdout.decode("ascii", "replace").splitlines():
        seconds, _, flags = line.partition(",")
        pts = _number(seconds)
        if pts is not None and flags.startswith("K"):
            keyframes.append(pts)
    if not keyframes:
        return 0.0
    keyframes.sort()
    ends = [*keyframes[1:], max(duration_s, keyframes[-1])]
    return round(max(end - start for start, end in zip(keyframes, ends, strict=True)), 3)


def _longest_stream(packet_lines: list[str]) -> float | None:
    """The longest stream's length from ``packet|stream_index=0|pts_time=..|duration_time=..``."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    totals: dict[str, float] = {}
    for line in packet_lines:
        fields = _compact_fields(line)
        stream = fields.get("stream_index", "")
        pts, duration = _number(fields.get("pts_time")), _number(fields.get("duration_time"))
        totals[stream] = totals.get(stream, 0.0) + (duration or 0.0)
        if pts is not None:
            starts[stream] = min(starts.get(stream, pts), pts)
            ends[stream] = max(ends.get(stream, pts), pts + (duration or 0.0))
    lengths = [ends[s] - starts[s] if s in ends else totals[s] for s in totals]
    longest = round(max(lengths, default=0.0), 3)
    return longest if longest > 0 else None


def _compact_fields(line: str) -> dict[str, str]:
    fields = {}
    for part in line.split("|")[1:]:
        key, _, value = part.partition("=")
        fields[key] = value
    return fields


def _run_guarded(
    command: list[str], timeout_s: float, memory_mb: int = DEFAULT_MEMORY_MB
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env=child_environment(),
            preexec_fn=child_preexec(memory_mb),
        )
    except subprocess.TimeoutExpired as exc:
        raise TaskFailure(
            FailureCode.TIMEOUT,
            f"ffprobe did not finish within {timeout_s:g} s",
            detail=(exc.stderr or b"").decode("utf-8", "replace")[-STDERR_TAIL_BYTES:],
        ) from exc
    except OSError as exc:
        raise TaskFailure(
            FailureCode.DEPENDENCY_DOWN, f"cannot start {command[0]}: {exc.strerror}"
        ) from exc


def _probe_failure(returncode: int, stderr: str, memory_mb: int) -> TaskFailure:
    failure = classify_ffmpeg_failure(returncode, stderr, MemoryUse(cap_mb=memory_mb))
    if failure.code is FailureCode.UNKNOWN:
        # ffprobe fails only to open or parse the file, and it says little more than that.
        return TaskFailure(
            FailureCode.INPUT_INVALID, "the file is not a readable media file", detail=stderr
        )
    if failure.code is FailureCode.INPUT_INVALID:
        return TaskFailure(
            FailureCode.INPUT_INVALID,
            "the file is not a readable media file (damaged, incomplete, or not media at all)",
            detail=stderr,
        )
    return failure


def _no_video_failure(streams: list[Json]) -> TaskFailure:
    if any(s.get("codec_type") == "audio" for s in streams):
        return TaskFailure(FailureCode.INPUT_NO_VIDEO, "the file has sound but no video")
    if any(_is_cover_art(s) for s in streams):
        return TaskFailure(FailureCode.INPUT_NO_VIDEO, "the file has only a cover picture")
    return TaskFailure(FailureCode.INPUT_INVALID, "the file has neither video nor sound")


def _is_cover_art(stream: Json) -> bool:
    disposition = stream.get("disposition") or {}
    return bool(disposition.get("attached_pic") or disposition.get("timed_thumbnails"))


def _is_still_image(format_name: str, stream: Json) -> bool:
    # image2 reads image files by extension, the *_pipe demuxers recognise them by content.
    if format_name == "image2" or format_name.endswith("_pipe"):
        return True
    return str(stream.get("nb_frames")) == "1"


def _decodable_video_codec(stream: Json) -> str:
    codec = stream.get("codec_name")
    if not codec or ("V", codec) not in decodable_codecs():
        name = codec or stream.get("codec_tag_string") or "unknown"
        raise TaskFailure(
            FailureCode.INPUT_UNSUPPORTED, f"the video codec ({name}) cannot be decoded here"
        )
    return str(codec)


def _is_decodable_audio(stream: Json) -> bool:
    return stream.get("codec_type") == "audio" and (
        ("A", stream.get("codec_name")) in decodable_codecs()
    )


@lru_cache(maxsize=1)
def decodable_codecs() -> frozenset[tuple[str, str]]:
    """(kind, codec name) pairs this ffmpeg can decode: kind "V" video, "A" audio."""
    result = _run_guarded([FFPROBE, "-hide_banner", "-codecs"], timeout_s=30)
    if result.returncode != 0:
        raise TaskFailure(FailureCode.DEPENDENCY_DOWN, "ffprobe cannot list its codecs")
    pairs = set()
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        fields = line.split()
        # " DEV.LS h264  H.264 / AVC ..." : flag 0 is decoding, flag 2 the kind.
        if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] == "D":
            pairs.add((fields[0][2], fields[1]))
    return frozenset(pairs)


def _duration_of(container: Json, streams: list[Json], video: Json) -> float:
    """The container's duration, else the longest stream's, else frames over frame rate."""
    stated = _positive_float(container.get("duration"))
    if stated is not None:
        return stated
    per_stream = [_positive_float(stream.get("duration")) for stream in streams]
    longest = max((seconds for seconds in per_stream if seconds is not None), default=None)
    if longest is not None:
        return longest
    frames, rate = _positive_float(video.get("nb_frames")), _frame_rate(video)
    if frames is not None and rate:
        return frames / rate
    raise TaskFailure(FailureCode.INPUT_INVALID, "the video's length cannot be determined")


def _rotation_of(stream: Json) -> int:
    """Clockwise degrees to turn the stored picture to show it upright (phones: 90)."""
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            # The display matrix angle is counter-clockwise, the old rotate tag clockwise.
            return _quarter_turns(side_data["rotation"], clockwise=False)
    return _quarter_turns((stream.get("tags") or {}).get("rotate"), clockwise=True)


def _quarter_turns(degrees: object, *, clockwise: bool) -> int:
    """The nearest of 0, 90, 180, 270 clockwise; 0 when absent or not a number."""
    try:
        angle = float(str(degrees)) if clockwise else -float(str(degrees))
        return round(angle / 90) % 4 * 90
    except (ValueError, OverflowError):  # None, "nan", "inf"
        return 0


def _display_size(width: int, height: int, stream: Json, rotation: int) -> tuple[int, int]:
    """Stretch anamorphic pixels to square ones, then swap sides for a quarter turn."""
    numerator, denominator = _ratio(stream.get("sample_aspect_ratio"))
    if numerator > 0 and denominator > 0 and numerator != denominator:
        width = max(1, round(width * numerator / denominator))
    return (height, width) if rotation in (90, 270) else (width, height)


def _frame_count(stream: Json, duration_s: float) -> int:
    """The frames to decode: the stated count, or frame rate times duration if more."""
    stated = _positive_float(stream.get("nb_frames")) or 0.0
    rate = _frame_rate(stream) or 0.0
    return math.ceil(max(stated, rate * duration_s))


def _frame_rate(stream: Json) -> float | None:
    for key in ("avg_frame_rate", "r_frame_rate"):
        numerator, denominator = _ratio(stream.get(key))
        if numerator > 0 and denominator > 0:
            return numerator / denominator
    return None


def _ratio(value: object) -> tuple[int, int]:
    """'16:9' or '30000/1001' as integers; (0, 0) when absent or malformed."""
    text = str(value or "").replace(":", "/")
    numerator, _, denominator = text.partition("/")
    try:
        return int(numerator), int(denominator)
    except ValueError:
        return 0, 0


def _positive_float(value: object) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _number(value: object) -> float | None:
    """A finite number from ffprobe's text, or None for "N/A", absent or garbage."""
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _frame_size(info: MediaInfo) -> str:
    shown, stored = f"{info.width}x{info.height}", f"{info.coded_width}x{info.coded_height}"
    same = sorted((info.width, info.height)) == sorted((info.coded_width, info.coded_height))
    return shown if same or not info.coded_width else f"{stored} stored, shown as {shown}"


def _per_second(frame_rate: float | None) -> str:
    return f" ({frame_rate:.4g} a second)" if frame_rate else ""


def _pixels(count: int) -> str:
    return f"{count / 1e6:.1f} megapixels" if count >= 100_000 else f"{count} pixels"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
