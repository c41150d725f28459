"""Tiny test media generated with ffmpeg at test time: good videos of every supported kind,
broken uploads of every failure kind, and a long video for tests that kill things mid-run.

Nothing is cached: callers generate into a pytest temporary folder.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# muxer name and the audio codec that suits it
CONTAINERS = {
    "mp4": ("mp4", "aac"),
    "mov": ("mov", "pcm_s16le"),
    "webm": ("webm", "libopus"),
    "mpeg": ("mpeg", "mp2"),
    "avi": ("avi", "libmp3lame"),
    "mkv": ("matroska", "aac"),
    "mpegts": ("mpegts", "aac"),
    "h264": ("h264", ""),  # a raw stream: no audio, no index, no stated duration
}

# fast settings per encoder; a recipe's extra_args come later and win
ENCODER_ARGS = {
    "libx264": ("-preset", "ultrafast", "-pix_fmt", "yuv420p"),
    "libx265": ("-preset", "ultrafast", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"),
    "libvpx-vp9": ("-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"),
    "mpeg2video": ("-q:v", "5"),
    "mpeg4": ("-q:v", "5"),
    "prores_ks": ("-profile:v", "0"),
}


@dataclass(frozen=True)
class Recipe:
    """How to make one good sample, and what probing it must report."""

    filename: str
    codec: str = "h264"  # ffprobe's codec_name of the video stream
    vcodec: str = "libx264"
    container: str = "mp4"
    width: int = 320
    height: int = 240
    audio: bool = True
    fps: int = 25
    duration_s: float = 1.0
    extra_args: tuple[str, ...] = ()
    rotation: int = 0  # clockwise turn a player applies, written as display metadata
    live: bool = False  # written to a pipe like a live recorder: no duration, no index
    display: tuple[int, int] | None = None  # display size when it differs from width x height

    @property
    def display_size(self) -> tuple[int, int]:
        if self.display is not None:
            return self.display
        turned = self.rotation in (90, 270)
        return (self.height, self.width) if turned else (self.width, self.height)


GOOD_SAMPLES: dict[str, Recipe] = {
    "h264": Recipe("h264.mp4"),
    "hevc": Recipe("hevc.mp4", codec="hevc", vcodec="libx265", extra_args=("-tag:v", "hvc1")),
    "vp9": Recipe("vp9.webm", codec="vp9", vcodec="libvpx-vp9", container="webm"),
    "mpeg2": Recipe("mpeg2.mpg", codec="mpeg2video", vcodec="mpeg2video", container="mpeg"),
    "mpeg4": Recipe("mpeg4.avi", codec="mpeg4", vcodec="mpeg4", container="avi"),
    "prores": Recipe("prores.mov", codec="prores", vcodec="prores_ks", container="mov"),
    "no_audio": Recipe("silent.mp4", audio=False),
    "vertical": Recipe("vertical.mp4", width=360, height=640),
    # stored landscape, shown portrait: what phones record
    "rotated": Recipe("rotated.mp4", width=640, height=360, rotation=90),
    # one frame a second: ffmpeg's last out_time lags seconds behind the real end
    "timelapse": Recipe("timelapse.mp4", fps=1, duration_s=4.0, audio=False),
    "1080p": Recipe("full-hd.mp4", width=1920, height=1080),
    "vfr": Recipe(
        "vfr.mp4",
        fps=30,
        # drop 3 frames of every 6 and keep the timestamps: frame gaps of 1/30 s and 1/7.5 s
        extra_args=("-vf", r"select='lt(mod(n\,6)\,3)'", "-fps_mode", "vfr"),
    ),
    # 4:4:4 because 4:2:0 cannot have odd sizes
    "odd_size": Recipe("odd.mp4", width=321, height=241, extra_args=("-pix_fmt", "yuv444p")),
    # 4:3 pixels, shown 16:9
    "anamorphic": Recipe("anamorphic.mp4", extra_args=("-aspect", "16:9"), display=(427, 240)),
    # what security cameras export: no container, so the length is measured from packets
    "raw_h264": Recipe("camera.h264", container="h264", audio=False),
    # what a browser's MediaRecorder uploads: the length must be measured
    "live_webm": Recipe(
        "recording.webm", codec="vp9", vcodec="libvpx-vp9", container="webm", live=True
    ),
    "unicode_name": Recipe("vidéo ünïcode 日本.mp4"),
    "option_like_name": Recipe("-i pipe:0.mp4"),
}


@dataclass(frozen=True)
class Broken:
    """A broken upload, the failure code it must end with, and the step that detects it."""

    code: str
    fails_at: str = "probe"  # or "transcode": probing cannot tell it is broken


BROKEN_SAMPLES: dict[str, Broken] = {
    "empty": Broken("input_invalid"),
    "random_bytes": Broken("input_invalid"),
    "text": Broken("input_invalid"),
    "truncated": Broken("input_invalid", fails_at="transcode"),
    "moov_missing": Broken("input_invalid"),
    "audio_only": Broken("input_no_video"),
    "cover_art_only": Broken("input_no_video"),
    "still_png": Broken("input_no_video"),
    "still_jpg": Broken("input_no_video"),
    "unknown_codec": Broken("input_unsupported"),
    "playlist": Broken("input_unsupported"),
}


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; a failure shows its stderr in the test report."""
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stderr}")


def ffprobe_json(path: Path, *entries: str) -> dict[str, object]:
    command = ["ffprobe", "-v", "error", "-of", "json", *entries, f"file:{path.absolute()}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def make_video(
    path: Path,
    *,
    duration_s: float = 1.0,
    width: int = 320,
    height: int = 240,
    vcodec: str = "libx264",
    container: str = "mp4",
    audio: bool = True,
    fps: int = 25,
    extra_args: Sequence[str] = (),
) -> Path:
    """A test-pattern video with a sine tone; any size, codec and container."""
    muxer, audio_codec = CONTAINERS[container]
    # yuv444p at the source keeps odd sizes odd; encoders convert to what they need
    picture = f"testsrc2=s={width}x{height}:r={fps}:d={duration_s},format=yuv444p"
    args = ["-f", "lavfi", "-i", picture]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:d={duration_s}"]
        args += ["-map", "0:v", "-map", "1:a", "-c:a", audio_codec]
    args += ["-c:v", vcodec, *ENCODER_ARGS.get(vcodec, ()), *extra_args]
    ffmpeg(*args, "-f", muxer, f"file:{path.absolute()}")
    return path


def make_rotated_video(
    path: Path, *, width: int = 640, height: int = 360, rotation: int = 90
) -> Path:
    """A video stored ``width`` x ``height`` that players turn ``rotation`` degrees clockwise.

    Shown upright its top half is white and its bottom half black, so a test can tell an
    upright rendition from one turned the wrong way.
    """
    upright_w, upright_h = (height, width) if rotation in (90, 270) else (width, height)
    upright = (
        f"color=white:s={upright_w}x{upright_h}:r=25:d=1,"
        f"drawbox=x=0:y={upright_h // 2}:w={upright_w}:h={upright_h // 2}:color=black:t=fill"
    )
    # store the picture turned the other way, so that the player's turn undoes it
    unturn = {0: "null", 90: "transpose=cclock", 180: "hflip,vflip", 270: "transpose=clock"}
    stored = path.with_name(f"unrotated-{path.name}")
    ffmpeg(
        "-f", "lavfi", "-i", f"{upright},{unturn[rotation]}",
        "-f", "lavfi", "-i", "sine=sample_rate=48000:d=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        f"file:{stored.absolute()}",
    )  # fmt: skip
    _add_rotation_metadata(stored, path, rotation)
    stored.unlink()
    return path


def make_live_recording(path: Path, *, duration_s: float = 1.0) -> Path:
    """A WebM written to a pipe, as browsers record: it states neither duration nor index."""
    picture = f"testsrc2=s=320x240:r=25:d={duration_s}"
    sound = f"sine=sample_rate=48000:d={duration_s}"
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    command += ["-f", "lavfi", "-i", picture, "-f", "lavfi", "-i", sound]
    command += ["-c:v", "libvpx-vp9", *ENCODER_ARGS["libvpx-vp9"], "-c:a", "libopus"]
    with path.open("wb") as output:
        subprocess.run([*command, "-f", "webm", "pipe:1"], stdout=output, check=True, timeout=120)
    return path


def _add_rotation_metadata(source: Path, destination: Path, rotation: int) -> None:
    """Remux with a display matrix; how to ask for one differs between ffmpeg versions."""
    attempts = [
        # ffmpeg 5.x writes the rotate tag as a counter-clockwise display matrix angle
        ([], ["-metadata:s:v:0", f"rotate={-rotation % 360}"]),
        ([], ["-metadata:s:v:0", f"rotate={rotation}"]),
        (["-display_rotation:v:0", str(-rotation)], []),  # ffmpeg 6 and later
    ]
    for input_args, output_args in attempts:
        try:
            ffmpeg(*input_args, "-i", f"file:{source.absolute()}", "-c", "copy", *output_args,
                   f"file:{destination.absolute()}")  # fmt: skip
        except RuntimeError:
            continue
        if _clockwise_rotation(destination) == rotation:
            return
    raise RuntimeError(f"this ffmpeg cannot write a {rotation} degree rotation")


def _clockwise_rotation(path: Path) -> int:
    report = ffprobe_json(path, "-show_streams", "-select_streams", "v:0")
    stream = report["streams"][0]  # type: ignore[index]
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            return int(-side_data["rotation"]) % 360
    return 0


def make_sample(recipe: Recipe, folder: Path) -> Path:
    path = folder / recipe.filename
    if recipe.live:
        return make_live_recording(path, duration_s=recipe.duration_s)
    if recipe.rotation:
        return make_rotated_video(
            path, width=recipe.width, height=recipe.height, rotation=recipe.rotation
        )
    return make_video(
        path,
        duration_s=recipe.duration_s,
        width=recipe.width,
        height=recipe.height,
        vcodec=recipe.vcodec,
        container=recipe.container,
        audio=recipe.audio,
        fps=recipe.fps,
        extra_args=recipe.extra_args,
    )


def make_good_samples(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: make_sample(recipe, folder) for name, recipe in GOOD_SAMPLES.items()}


def make_broken_samples(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "empty": _write(folder / "empty.mp4", b""),
        "random_bytes": _write(folder / "random.mp4", random.Random(20240611).randbytes(65536)),
        "text": _write(folder / "notes.txt", b"not a video, just words\n" * 400),
        "truncated": _truncated(folder / "truncated.mp4"),
        "moov_missing": _moov_missing(folder / "moov-missing.mp4"),
        "audio_only": _audio_only(folder / "audio-only.m4a"),
        "cover_art_only": _cover_art_only(folder / "song-with-cover.mp3"),
        "still_png": _still_image(folder / "still.png"),
        "still_jpg": _still_image(folder / "still.jpg"),
        "unknown_codec": _unknown_codec(folder / "unknown-codec.avi"),
        "playlist": _playlist(folder / "playlist.mp4"),
    }
    assert made.keys() == BROKEN_SAMPLES.keys()
    return made


def make_long_video(
    path: Path, duration_s: float = 20, *, width: int = 1280, height: int = 720
) -> Path:
    """A video that takes seconds to transcode on two cores, made in about two."""
    return make_video(path, duration_s=duration_s, width=width, height=height)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path) -> Path:
    """A faststart MP4 cut in half: the index is intact, so only decoding shows the damage."""
    whole = make_video(path, duration_s=2.0, extra_args=("-movflags", "+faststart"))
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "expected the index first"
    return _write(path, data[: len(data) // 2])


def _moov_missing(path: Path) -> Path:
    """An MP4 with its index at the end, cut before the index."""
    data = make_video(path, duration_s=2.0).read_bytes()
    moov_box_start = data.rfind(b"moov") - 4
    assert moov_box_start > data.find(b"mdat"), "expected the index last"
    return _write(path, data[:moov_box_start])


def _audio_only(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", "-f", "ipod", f"file:{path}")
    return path


def _cover_art_only(path: Path) -> Path:
    cover = path.with_suffix(".cover.png")
    _still_image(cover)
    ffmpeg(
        "-f", "lavfi", "-i", "sine=d=1", "-i", f"file:{cover}", "-map", "0:a", "-map", "1:v",
        "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic",
        "-f", "mp3", f"file:{path}",
    )  # fmt: skip
    cover.unlink()
    return path


def _still_image(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240", "-frames:v", "1", f"file:{path}")
    return path


def _playlist(path: Path) -> Path:
    """An HLS playlist named like a video, naming a real local video as its one segment."""
    segment = make_video(path.with_name("segment.mp4"))
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXTINF:1,", str(segment), "#EXT-X-ENDLIST"]
    return _write(path, "\n".join(lines).encode() + b"\n")


def _unknown_codec(path: Path) -> Path:
    """An AVI whose video four-character code no decoder knows."""
    made = make_video(path, vcodec="mpeg4", container="avi", extra_args=("-vtag", "XVID"))
    return _write(path, made.read_bytes().replace(b"XVID", b"QZQZ"))


# Hostile uploads: small files that would cost the server far more than they look.


def make_hidden_wide_frames(path: Path, *, stored: tuple[int, int] = (640, 64)) -> Path:
    """Frames stored ``stored`` but shown ten times narrower (sample aspect ratio 1:10), so
    the shown size hides what decoding costs."""
    width, height = stored
    picture = f"testsrc2=s={width}x{height}:r=10:d=1,setsar=1/10"
    ffmpeg("-f", "lavfi", "-i", picture, "-c:v", "libx264", *ENCODER_ARGS["libx264"],
           "-f", "mp4", f"file:{path.absolute()}")  # fmt: skip
    return path


def make_huge_frames(path: Path, *, side: int = 4096) -> Path:
    """Two ``side`` x ``side`` frames of one colour: some 50 KB on disk, hundreds of MB to
    decode."""
    picture = f"color=c=blue:s={side}x{side}:r=5:d=0.4"
    ffmpeg("-f", "lavfi", "-i", picture, "-c:v", "libx264", *ENCODER_ARGS["libx264"],
           "-f", "mp4", f"file:{path.absolute()}")  # fmt: skip
    return path


def make_reference_list(path: Path, kind: str, target: str) -> Path:
    """An HLS playlist (``kind`` "hls") or ffconcat list ("concat") that names ``target``,
    a local file, as its content: uploaded as a video, it must not make ffmpeg read it."""
    if kind == "hls":
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXTINF:1,", target, "#EXT-X-ENDLIST"]
    else:
        lines = ["ffconcat version 1.0", f"file {target}"]
    return _write(path, "\n".join(lines).encode() + b"\n")
