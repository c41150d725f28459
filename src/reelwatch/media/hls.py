"""HLS (fMP4/CMAF) variants of a video, and the master playlist that lists them.

A variant is cut from an H.264/AAC MP4 by stream copy: the encode forced a keyframe at
every ``SEGMENT_S`` seconds (``FORCED_KEYFRAMES``), so every variant of a video starts
its segments at the same instants and a player switches between them cleanly. Each
variant folder (``index.m3u8``, ``init.mp4``, ``seg-00001.m4s``…) is written into a
temporary folder and renamed into place whole, with ``variant.json`` (what the master
playlist says of it). The master playlist is never stored: the API writes it for each
request from the variants made so far, so it lists the first playable rendition while
the rest of the ladder is still being made.
"""

from __future__ import annotations

import glob
import json
import math
import re
import secrets
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media.ffmpeg import FfmpegLimits, media_input, media_url, run_ffmpeg
from reelwatch.storage.local import fsync_path

SEGMENT_S = 4
# A keyframe at 0, 4, 8… s in every rendition: where the segmenter may cut.
FORCED_KEYFRAMES = ("-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_S})")
# Beside a stream-copied source, whose segments start at its own keyframes: keyframes
# exactly there and nowhere else (no periodic or scene-cut ones), so segments align.
SOURCE_KEYFRAMES = ("-force_key_frames", "source", "-g", "1000000", "-sc_threshold", "0")
MASTER = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
VARIANT_INFO = "variant.json"
# The names the HLS route serves: nothing else under hls/ ever is.
VARIANT_NAME = re.compile(r"[0-9]{1,5}p")
SEGMENT_NAME = re.compile(r"seg-[0-9]{5,9}\.m4s")
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
}
_EXTINF = re.compile(r"#EXTINF:([0-9.]+),")


@dataclass(frozen=True)
class Variant:
    """What the master playlist says of one variant."""

    name: str
    width: int
    height: int
    frame_rate: float | None
    bandwidth: int  # the peak segment bit rate, bit/s
    average_bandwidth: int
    codecs: str
    size_bytes: int  # the init segment and every media segment


def is_served_name(relative: str) -> bool:
    """Whether ``relative`` (below a video's hls/) is a file the store writes."""
    parts = relative.split("/")
    if parts == [MASTER]:
        return True
    if len(parts) != 2 or not VARIANT_NAME.fullmatch(parts[0]):
        return False
    return parts[1] in (MEDIA_PLAYLIST, INIT_SEGMENT) or bool(SEGMENT_NAME.fullmatch(parts[1]))


def content_type(relative: str) -> str:
    return CONTENT_TYPES[Path(relative).suffix]


def package_variant(
    source: Path,
    destination: Path,
    *,
    width: int,
    height: int,
    frame_rate: float | None,
    has_audio: bool,
    limits: FfmpegLimits,
    cancel: threading.Event | None = None,
) -> Variant:
    """Cut ``source`` (H.264, AAC or silent) into the HLS variant folder ``destination``
    by stream copy; the folder appears whole, replacing an earlier one."""
    with folder_written_atomically(destination) as temporary:
        run_ffmpeg(
            segment_args(source, temporary, has_audio),
            duration_s=None,
            limits=limits,
            cancel=cancel,
        )
        variant = measure_variant(temporary, destination.name, width, height, frame_rate)
        (temporary / VARIANT_INFO).write_text(json.dumps(asdict(variant)))
        for written in temporary.iterdir():
            fsync_path(written)
        return variant


def segment_args(source: Path, folder: Path, has_audio: bool) -> list[str]:
    args = [*media_input(source), "-map", "0:v:0", *(["-map", "0:a:0"] if has_audio else [])]
    args += ["-c", "copy", "-map_metadata", "-1", "-f", "hls", "-hls_time", str(SEGMENT_S)]
    args += ["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"]
    args += ["-hls_fmp4_init_filename", INIT_SEGMENT, "-start_number", "1"]
    args += ["-hls_flags", "independent_segments"]
    args += ["-hls_segment_filename", media_url(folder / "seg-%05d.m4s")]
    return [*args, media_url(folder / MEDIA_PLAYLIST)]


def measure_variant(
    folder: Path, name: str, width: int, height: int, frame_rate: float | None
) -> Variant:
    """A variant's bit rates from its own segments, and its codecs from its init segment."""
    segments = segment_durations(folder / MEDIA_PLAYLIST)
    if not segments:
        raise TaskFailure(FailureCode.UNKNOWN, f"the {name} HLS playlist lists no segment")
    sizes = {uri: (folder / uri).stat().st_size for uri, _ in segments}
    init_bytes = (folder / INIT_SEGMENT).stat().st_size
    total_s = sum(seconds for _, seconds in segments) or 1.0
    peak = max(sizes[uri] * 8 / max(seconds, 0.001) for uri, seconds in segments)
    return Variant(
        name=name,
        width=width,
        height=height,
        frame_rate=frame_rate,
        bandwidth=math.ceil(peak),
        average_bandwidth=math.ceil(sum(sizes.values()) * 8 / total_s),
        codecs=codecs_of(folder / INIT_SEGMENT),
        size_bytes=init_bytes + sum(sizes.values()),
    )


def segment_durations(playlist: Path) -> list[tuple[str, float]]:
    """(segment URI, seconds) of each segment of a media playlist, in order."""
    entries: list[tuple[str, float]] = []
    seconds: float | None = None
    for line in playlist.read_text().splitlines():
        match = _EXTINF.match(line)
        if match:
            seconds = float(match.group(1))
        elif line and not line.startswith("#") and seconds is not None:
            if not SEGMENT_NAME.fullmatch(line):
                raise TaskFailure(FailureCode.UNKNOWN, f"unexpected HLS segment name {line!r}")
            entries.append((line, seconds))
            seconds = None
    return entries


def codecs_of(init_segment: Path) -> str:
    """The RFC 6381 CODECS of an init segment: ``avc1.PPCCLL`` from its avcC box (the
    real profile, constraint flags and level), and ``mp4a.40.2`` if it has AAC."""
    data = init_segment.read_bytes()
    at = data.find(b"avcC")
    if at < 0 or len(data) < at + 8:
        raise TaskFailure(FailureCode.UNKNOWN, "the HLS init segment holds no H.264 track")
    profile, constraints, level = data[at + 5], data[at + 6], data[at + 7]
    codecs = [f"avc1.{profile:02x}{constraints:02x}{level:02x}"]
    if b"mp4a" in data:
        codecs.append("mp4a.40.2")
    return ",".join(codecs)


def by_bandwidth(variants: Sequence[Variant]) -> list[Variant]:
    """Lowest first, as players expect the first listed to be a safe start."""
    return sorted(variants, key=lambda v: (v.bandwidth, v.height * v.width))


def master_playlist(variants: Sequence[Variant]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        attributes = [
            f"BANDWIDTH={variant.bandwidth}",
            f"AVERAGE-BANDWIDTH={variant.average_bandwidth}",
            f"RESOLUTION={variant.width}x{variant.height}",
        ]
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        attributes.append(f'CODECS="{variant.codecs}"')
        lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", f"{variant.name}/{MEDIA_PLAYLIST}"]
    return "\n".join(lines) + "\n"


@contextmanager
def folder_written_atomically(destination: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``destination``; on success it replaces
    ``destination`` whole, on failure it is removed. Debris of earlier attempts goes first."""
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in parent.glob(f".{glob.escape(destination.name)}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    temporary = parent / f".{destination.name}.{secrets.token_hex(4)}.tmp"
    temporary.mkdir()
    try:
        yield temporary
        if destination.exists():  # a re-run: swap the old folder out, then remove it
            retired = parent / f".{destination.name}.{secrets.token_hex(4)}.tmp"
            destination.replace(retired)
            temporary.replace(destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            temporary.replace(destination)
        fsync_path(parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
