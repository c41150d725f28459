"""HLS (fMP4/CMAF) variants of a video, and the master playlist that lists them.

ffmpeg cuts each variant while it encodes (``hls_output``, beside the MP4): the encode
forces a keyframe every ``SEGMENT_S`` seconds (``FORCED_KEYFRAMES``), so every variant
of a video starts its segments at the same instants and a player switches between them
cleanly. A variant folder (``index.m3u8``, ``init.mp4``, ``seg-00001.m4s``…) is whole
once it holds ``variant.json`` (what the master playlist says of it), written last.
Before that, one variant may already play (``EarlyStream``): its ``index.m3u8`` is an
EVENT playlist of the segments finished so far, and ``early.json`` stands in for its
marker. The master playlist is never stored: the API writes it for each request from
the variants that play so far, so it lists the first playable rendition while the rest
of the ladder is still being made.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.storage.local import fsync_path

SEGMENT_S = 4
# A keyframe at 0, 4, 8… s in every rendition: where the segmenter may cut.
FORCED_KEYFRAMES = ("-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_S})")
# Beside a stream-copied source, whose segments start at its own keyframes: keyframes
# exactly there and nowhere else (no periodic or scene-cut ones), so segments align.
SOURCE_KEYFRAMES = ("-force_key_frames", "source", "-g", "1000000", "-sc_threshold", "0")
# The longest a segment can be: cut at the source's own keyframes, two of the usual.
MAX_SEGMENT_S = 2 * SEGMENT_S
MASTER = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
VARIANT_INFO = "variant.json"
# What the master playlist says of a variant still being made (``EarlyStream``).
EARLY_VARIANT_INFO = "early.json"
# ffmpeg's own playlist of a variant it is writing: read by reelwatch, never served.
FFMPEG_PLAYLIST = "ffmpeg.m3u8"
# The names the HLS route serves: nothing else under hls/ ever is.
VARIANT_NAME = re.compile(r"[0-9]{1,5}p")
SEGMENT_NAME = re.compile(r"seg-[0-9]{5,9}\.m4s")
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
}
_EXTINF = re.compile(r"#EXTINF:([0-9.]+),")
_NUMBER_PATTERN = re.compile(r"%[0-9]*d")


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


def hls_output(folder: Path) -> str:
    """The ``tee`` muxer's slave that cuts the encoded streams into the HLS variant
    ``folder`` as they come, beside the MP4: a growing EVENT playlist of ffmpeg's own
    (``FFMPEG_PLAYLIST``, never served) that lists a segment once it is whole."""
    where = str(folder.absolute())
    if _NUMBER_PATTERN.search(where):  # the segmenter would put a number there
        raise ValueError(f"a media folder's path may not hold %d: {where!r}")
    options = {
        "f": "hls",
        "hls_time": str(SEGMENT_S),
        "hls_playlist_type": "event",
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": INIT_SEGMENT,
        "start_number": "1",
        "hls_flags": "independent_segments+temp_file",
        "hls_segment_filename": f"{where}/seg-%05d.m4s",
    }
    return tee_slave(options, f"{where}/{FFMPEG_PLAYLIST}")


def tee_slave(options: dict[str, str], path: str) -> str:
    """``[key=value:…]path`` for the tee muxer, escaped for its two parsers (the slave
    list, then each option's value): a folder name can never become an option. An
    absolute path is never read as a protocol, so it needs no ``file:``."""
    listed = ":".join(f"{key}={_escaped(value, ':]')}" for key, value in options.items())
    return _escaped(f"[{listed}]{path}", "|")


def _escaped(text: str, specials: str) -> str:
    return "".join(f"\\{char}" if char in f"\\{specials}" else char for char in text)


def fresh_folder(folder: Path) -> None:
    """An empty variant folder (an earlier attempt's files go first)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def finish_variant(
    folder: Path, name: str, width: int, height: int, frame_rate: float | None
) -> Variant:
    """Once ffmpeg has written the whole variant: its VOD playlist, then ``variant.json``
    (the marker that says it is whole), every file synced; ffmpeg's playlist goes."""
    segments = listed_segments(folder)
    if not segments:
        raise TaskFailure(FailureCode.UNKNOWN, f"the {name} HLS playlist lists no segment")
    _write_atomically(folder / MEDIA_PLAYLIST, media_playlist(segments, complete=True))
    variant = measure_variant(folder, segments, name, width, height, frame_rate)
    (folder / FFMPEG_PLAYLIST).unlink()
    for written in folder.iterdir():
        fsync_path(written)
    _write_atomically(folder / VARIANT_INFO, json.dumps(asdict(variant)))
    fsync_path(folder)
    return variant


def listed_segments(folder: Path) -> list[tuple[str, float]]:
    """The segments ffmpeg has finished so far, by its own playlist (none yet: [])."""
    try:
        return segment_durations(folder / FFMPEG_PLAYLIST)
    except FileNotFoundError:
        return []


def media_playlist(segments: Sequence[tuple[str, float]], *, complete: bool) -> str:
    """A variant's playlist: VOD once ``complete``; before, an EVENT playlist (segments
    are only ever added) that players start from its beginning, not its live edge."""
    longest = max((round(seconds) for _, seconds in segments), default=SEGMENT_S)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7"]
    # A growing playlist's target may not change: the longest a segment can be.
    lines.append(f"#EXT-X-TARGETDURATION:{max(longest, 1 if complete else MAX_SEGMENT_S)}")
    lines += ["#EXT-X-MEDIA-SEQUENCE:1", f"#EXT-X-PLAYLIST-TYPE:{'VOD' if complete else 'EVENT'}"]
    if not complete:
        lines.append("#EXT-X-START:TIME-OFFSET=0")
    lines += ["#EXT-X-INDEPENDENT-SEGMENTS", f'#EXT-X-MAP:URI="{INIT_SEGMENT}"']
    for uri, seconds in segments:
        lines += [f"#EXTINF:{seconds:.6f},", uri]
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass
class EarlyStream:
    """Makes a variant playable while ffmpeg is still writing it: each time ``poll``
    finds new whole segments, it writes the variant's EVENT playlist and
    ``early.json`` (what the master playlist says of it meanwhile), then hands the
    files to ``publish`` (names within the folder, the playlist last)."""

    folder: Path
    plan_name: str
    width: int
    height: int
    frame_rate: float | None
    publish: Callable[[list[str], Variant], None]
    published: int = 0  # segments

    def poll(self) -> None:
        segments = listed_segments(self.folder)
        if len(segments) <= self.published:
            return
        new = [uri for uri, _ in segments[self.published :]]
        variant = measure_variant(
            self.folder, segments, self.plan_name, self.width, self.height, self.frame_rate
        )
        _write_atomically(self.folder / EARLY_VARIANT_INFO, json.dumps(asdict(variant)))
        _write_atomically(self.folder / MEDIA_PLAYLIST, media_playlist(segments, complete=False))
        first = [INIT_SEGMENT] if self.published == 0 else []
        self.publish([*first, *new, EARLY_VARIANT_INFO, MEDIA_PLAYLIST], variant)
        self.published = len(segments)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def measure_variant(
    folder: Path,
    segments: Sequence[tuple[str, float]],
    name: str,
    width: int,
    height: int,
    frame_rate: float | None,
) -> Variant:
    """A variant's bit rates from its own ``segments``, and its codecs from its init segment."""
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
