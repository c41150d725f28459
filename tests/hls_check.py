"""Reading and checking reelwatch's HLS output as a player would: the master playlist,
each media playlist and its segments, fetched over the API and probed with ffprobe."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

import samples
from instance import LiveInstance, free_port
from reelwatch.config import Settings, load_settings
from reelwatch.engine.spec import TaskContext
from reelwatch.videos.pipeline import VIDEO_WORKFLOW

LADDER = "240,360"


def hls_settings(home: Path, **overrides: Any) -> Settings:
    return load_settings(
        home=home,
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=5,
        retry_backoff_scale=0.0,
        renditions=LADDER,
        **overrides,
    )


def clip(folder: Path, name: str, **recipe: Any) -> Path:
    """A 9 s clip (three segments of at most 4 s): with a keyframe every ``gop`` frames,
    browser-ready (H.264 4:2:0, AAC); without, in 4:4:4, which browsers cannot play."""
    folder.mkdir(parents=True, exist_ok=True)
    gop = recipe.pop("gop", None)
    extra = ("-g", str(gop)) if gop else ("-pix_fmt", "yuv444p")
    return samples.make_video(folder / name, duration_s=9.0, extra_args=extra, **recipe)


ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
# profile_idc of the avcC box, by ffprobe's name of the profile
PROFILE_IDC = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}


@dataclass(frozen=True)
class StreamInf:
    attributes: dict[str, str]
    uri: str


def parse_master(text: str) -> list[StreamInf]:
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in lines and "#EXT-X-VERSION:7" in lines
    variants = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            found = ATTRIBUTE.findall(line.partition(":")[2])
            variants.append(StreamInf({k: v.strip('"') for k, v in found}, lines[index + 1]))
    return variants


def parse_media(text: str) -> tuple[int, list[tuple[float, str]]]:
    """The target duration and the (seconds, URI) of each segment of a VOD playlist."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    for tag in ("#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-ENDLIST"):
        assert tag in lines, tag
    assert '#EXT-X-MAP:URI="init.mp4"' in lines
    target = int(next(line for line in lines if line.startswith("#EXT-X-TARGETDURATION:"))[22:])
    segments = [
        (float(line[8:].rstrip(",")), lines[index + 1])
        for index, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]
    return target, segments


def check_hls(
    client: httpx.Client, video: dict[str, Any], folder: Path, *, frame_rate: float = 25.0
) -> dict[str, list[float]]:
    """Fetch and check a video's whole HLS output; the segment durations by variant."""
    master = client.get(video["hls_url"])
    assert master.status_code == 200, master.text
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    variants = parse_master(master.text)
    renditions = {r["name"]: r for r in video["renditions"]}
    assert sorted(v.uri for v in variants) == sorted(f"{n}/index.m3u8" for n in renditions)
    durations = {}
    for variant in variants:
        name = variant.uri.partition("/")[0]
        durations[name] = _check_variant(client, video, variant, renditions[name], folder)
        attributes = variant.attributes
        assert float(attributes["FRAME-RATE"]) == frame_rate
        assert int(attributes["BANDWIDTH"]) >= int(attributes["AVERAGE-BANDWIDTH"]) > 0
    return durations


def _check_variant(
    client: httpx.Client,
    video: dict[str, Any],
    variant: StreamInf,
    rendition: dict[str, Any],
    folder: Path,
) -> list[float]:
    base = video["hls_url"].rsplit("/", 1)[0]
    name = rendition["name"]
    local = folder / video["id"] / name
    local.mkdir(parents=True)
    playlist = client.get(f"{base}/{variant.uri}")
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    (local / "index.m3u8").write_text(playlist.text)
    target, segments = parse_media(playlist.text)
    assert all(round(seconds) <= target for seconds, _ in segments), (target, segments)
    assert abs(sum(s for s, _ in segments) - video["duration_s"]) < 0.5
    for uri, kind in [("init.mp4", "video/mp4"), *((u, "video/iso.segment") for _, u in segments)]:
        response = client.get(f"{base}/{name}/{uri}")
        assert response.status_code == 200 and response.headers["content-type"] == kind
        (local / uri).write_bytes(response.content)
    stream = _ffprobe_video(local / "index.m3u8")
    assert variant.attributes["RESOLUTION"] == f"{rendition['width']}x{rendition['height']}"
    assert (stream["width"], stream["height"]) == (rendition["width"], rendition["height"])
    codecs = variant.attributes["CODECS"].split(",")
    assert re.fullmatch(r"avc1\.[0-9a-f]{6}", codecs[0]), codecs
    assert int(codecs[0][5:7], 16) == PROFILE_IDC[stream["profile"]]
    assert int(codecs[0][9:11], 16) == stream["level"]
    assert codecs[1:] == (["mp4a.40.2"] if _has_audio(local / "index.m3u8") else [])
    return [seconds for seconds, _ in segments]


def _ffprobe_video(playlist: Path) -> dict[str, Any]:
    command = ["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-select_streams", "v:0"]
    result = subprocess.run(
        [*command, "-protocol_whitelist", "file", str(playlist)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stream = json.loads(result.stdout)["streams"][0]
    assert stream["codec_name"] == "h264"
    return stream  # type: ignore[no-any-return]


def _has_audio(playlist: Path) -> bool:
    command = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-select_streams"]
    result = subprocess.run(
        [*command, "a", "-of", "csv=p=0", "-protocol_whitelist", "file", str(playlist)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    codecs = set(result.stdout.split())  # listed once per program, once per stream
    assert codecs in (set(), {"aac"})
    return bool(codecs)


def hold_ladder(live: LiveInstance) -> threading.Event:
    """Make the instance's ``ladder`` tasks wait until the returned event is set (or a
    minute passes), so the first rendition is alone for as long as a test needs."""
    release = threading.Event()
    declared = live.workflows[VIDEO_WORKFLOW]
    handler = declared.handler_for("transcode")

    def held(ctx: TaskContext) -> dict[str, Any] | None:
        if ctx.params.get("part") == "ladder":
            assert release.wait(60)
        return handler(ctx)

    live.workflows[VIDEO_WORKFLOW] = replace(
        declared,
        tasks=tuple(
            replace(t, handler=held) if t.kind == "transcode" else t for t in declared.tasks
        ),
    )
    return release


def hold_after_playable(live: LiveInstance) -> threading.Event:
    """Make the instance's transcode tasks wait, once they have announced the video
    ``playable``, until the returned event is set (or a minute passes): the first
    rendition stays half-made, its first segments out, for as long as a test needs."""
    release = threading.Event()
    declared = live.workflows[VIDEO_WORKFLOW]
    handler = declared.handler_for("transcode")

    def held(ctx: TaskContext) -> dict[str, Any] | None:
        recorded = ctx.checkpoint

        def checkpoint_then_wait(kind: str, data: dict[str, Any]) -> bool:
            done = recorded(kind, data)
            assert release.wait(60)
            return done

        ctx.checkpoint = checkpoint_then_wait  # type: ignore[method-assign]
        return handler(ctx)

    live.workflows[VIDEO_WORKFLOW] = replace(
        declared,
        tasks=tuple(
            replace(t, handler=held) if t.kind == "transcode" else t for t in declared.tasks
        ),
    )
    return release
