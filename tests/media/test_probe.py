"""probe_media and check_limits on real generated media, and the report judge on edge cases."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

import samples
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media import FfmpegLimits, MediaInfo, check_limits, probe_media, run_ffmpeg
from reelwatch.media.ffmpeg import media_input
from reelwatch.media.probe import media_info_from_report

PROBE_FAILURES = [
    name for name, broken in samples.BROKEN_SAMPLES.items() if broken.fails_at == "probe"
]


@pytest.mark.parametrize("name", samples.GOOD_SAMPLES)
def test_good_sample_probes_as_what_it_is(
    name: str, good_samples: dict[str, Path], good_infos: dict[str, MediaInfo]
) -> None:
    recipe, info = samples.GOOD_SAMPLES[name], good_infos[name]
    assert info.video_codec == recipe.codec
    assert (info.width, info.height) == recipe.display_size
    assert info.rotation == recipe.rotation
    assert info.has_audio is recipe.audio
    assert info.duration_s == pytest.approx(recipe.duration_s, abs=0.1)
    assert info.frame_rate is not None and 0 < info.frame_rate <= recipe.fps
    assert info.size_bytes == good_samples[name].stat().st_size > 0
    assert info.format_name


def test_the_keyframe_gap_is_measured_only_when_asked(good_samples: dict[str, Path]) -> None:
    """A rendition's check skips the packet scan: only a source's copy depends on it."""
    assert probe_media(good_samples["h264"]).keyframe_gap_s > 0
    assert probe_media(good_samples["h264"], keyframes=False).keyframe_gap_s == 0.0


def test_rotated_phone_video_reports_portrait_display_size(
    good_infos: dict[str, MediaInfo],
) -> None:
    rotated = good_infos["rotated"]
    assert (rotated.width, rotated.height, rotated.rotation) == (360, 640, 90)


def test_variable_frame_rate_is_reported_as_the_average(good_infos: dict[str, MediaInfo]) -> None:
    # 3 of every 6 frames at 30 fps survive
    assert good_infos["vfr"].frame_rate == pytest.approx(15, rel=0.2)


def test_probe_reads_content_not_the_file_name(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    """The store keeps uploads as ``original``, without an extension."""
    for name, path in good_samples.items():
        original = tmp_path / name / "original"
        original.parent.mkdir()
        shutil.copyfile(path, original)
        assert probe_media(original) == good_infos[name], name


@pytest.mark.parametrize("extension", [True, False], ids=["named", "extensionless"])
@pytest.mark.parametrize("name", PROBE_FAILURES)
def test_broken_sample_fails_probe_permanently(
    name: str, extension: bool, broken_samples: dict[str, Path], tmp_path: Path
) -> None:
    path = broken_samples[name]
    if not extension:
        path = Path(shutil.copyfile(path, tmp_path / "original"))
    code = samples.BROKEN_SAMPLES[name].code
    if name == "still_jpg" and extension:
        # A .jpg name picks image2, which can read other files, so it is refused; the
        # store's extensionless "original" is read by jpeg_pipe, a still image.
        code = "input_unsupported"
    with pytest.raises(TaskFailure) as caught:
        probe_media(path)
    assert caught.value.code == FailureCode(code)
    assert not caught.value.recoverable
    assert caught.value.message


def test_truncated_file_passes_probe_because_its_index_is_intact(
    broken_samples: dict[str, Path],
) -> None:
    info = probe_media(broken_samples["truncated"])
    assert info.duration_s == pytest.approx(2.0, abs=0.1)


def test_a_playlist_cannot_make_ffprobe_fetch_a_url(tmp_path: Path) -> None:
    """Server-side request forgery through an upload; ffmpeg's defaults differ by version."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        port = server.getsockname()[1]
        playlist = ["#EXTM3U", "#EXTINF:1,", f"http://127.0.0.1:{port}/seg.ts", "#EXT-X-ENDLIST"]
        upload = tmp_path / "original"
        upload.write_text("\n".join(playlist) + "\n")
        with pytest.raises(TaskFailure) as caught:
            probe_media(upload)
        assert not caught.value.recoverable
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody knocked


@pytest.mark.parametrize(
    ("kind", "name"), [("hls", "playlist"), ("concat", "ffconcat"), ("concat", "named")]
)
def test_a_playlist_cannot_make_ffmpeg_read_another_local_file(
    kind: str, name: str, tmp_path: Path
) -> None:
    """The file a playlist names is a FIFO: opening it would block until the timeout,
    so a quick ``input_unsupported`` proves that neither ffprobe nor ffmpeg opened it."""
    secret = tmp_path / "secret.mp4"
    os.mkfifo(secret)
    # ffconcat accepts only relative names by default; HLS takes absolute ones.
    target = str(secret) if kind == "hls" else secret.name
    upload = samples.make_reference_list(
        tmp_path / ("original.m3u8" if name == "named" else "original"), kind, target
    )
    with pytest.raises(TaskFailure) as caught:
        probe_media(upload, timeout_s=10)
    assert caught.value.code is FailureCode.INPUT_UNSUPPORTED, caught.value
    assert f"{kind} format" in caught.value.message
    decode = [*media_input(upload), "-f", "null", "-"]
    with pytest.raises(TaskFailure) as caught:
        run_ffmpeg(decode, duration_s=1, limits=FfmpegLimits(stall_timeout_s=10, timeout_s=10))
    assert caught.value.code is FailureCode.INPUT_UNSUPPORTED, caught.value


def test_missing_file_is_a_storage_problem(tmp_path: Path) -> None:
    with pytest.raises(TaskFailure) as caught:
        probe_media(tmp_path / "gone")
    assert caught.value.code is FailureCode.STORAGE_UNAVAILABLE


def test_missing_ffprobe_is_a_dependency_down(
    good_samples: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TaskFailure) as caught:
        probe_media(good_samples["h264"])
    assert caught.value.code is FailureCode.DEPENDENCY_DOWN
    assert caught.value.recoverable


def test_ffprobe_over_its_time_is_a_timeout(good_samples: dict[str, Path]) -> None:
    with pytest.raises(TaskFailure) as caught:
        probe_media(good_samples["1080p"], timeout_s=0.001)
    assert caught.value.code is FailureCode.TIMEOUT


INFO = MediaInfo(
    duration_s=600.0,
    width=1920,
    height=1080,
    rotation=0,
    video_codec="h264",
    has_audio=True,
    frame_rate=25.0,
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    size_bytes=1,
    coded_width=1920,
    coded_height=1088,
    frame_count=15000,
)
NO_LIMIT = 10**12


def test_limits_allow_a_video_exactly_at_them() -> None:
    check_limits(INFO, max_duration_s=600, max_pixels=1920 * 1088, max_frames=15000)


def test_limits_refuse_a_long_video_naming_the_limit() -> None:
    with pytest.raises(TaskFailure) as caught:
        check_limits(INFO, max_duration_s=599, max_pixels=NO_LIMIT, max_frames=NO_LIMIT)
    assert caught.value.code is FailureCode.INPUT_TOO_LARGE
    assert "0:10:00" in caught.value.message and "0:09:59" in caught.value.message
    assert "duration" in caught.value.message


def test_limits_refuse_large_frames_naming_the_limit() -> None:
    with pytest.raises(TaskFailure) as caught:
        check_limits(INFO, max_duration_s=3600, max_pixels=1280 * 720, max_frames=NO_LIMIT)
    assert caught.value.code is FailureCode.INPUT_TOO_LARGE
    assert "1920x1088 stored" in caught.value.message
    assert "0.9 megapixels" in caught.value.message


def test_limits_refuse_a_frame_stored_larger_than_it_is_shown(tmp_path: Path) -> None:
    """A tiny pixel aspect ratio shows 640x64 stored pixels as 64x64: the limit is on
    what decoding costs, not on what a player shows."""
    info = probe_media(samples.make_hidden_wide_frames(tmp_path / "narrow.mp4"))
    assert (info.width, info.height, info.coded_width, info.coded_height) == (64, 64, 640, 64)
    check_limits(info, max_duration_s=60, max_pixels=640 * 64, max_frames=NO_LIMIT)
    with pytest.raises(TaskFailure) as caught:
        check_limits(info, max_duration_s=60, max_pixels=10_000, max_frames=NO_LIMIT)
    assert caught.value.code is FailureCode.INPUT_TOO_LARGE
    assert "640x64 stored, shown as 64x64 (40960 pixels)" in caught.value.message
    assert "limit of 10000 pixels (max pixels)" in caught.value.message


def test_limits_refuse_more_frames_than_allowed(good_infos: dict[str, MediaInfo]) -> None:
    info = good_infos["h264"]  # 1 s at 25 frames a second
    assert info.frame_count == 25
    check_limits(info, max_duration_s=60, max_pixels=NO_LIMIT, max_frames=25)
    with pytest.raises(TaskFailure) as caught:
        check_limits(info, max_duration_s=60, max_pixels=NO_LIMIT, max_frames=24)
    assert caught.value.code is FailureCode.INPUT_TOO_LARGE
    assert "25 frames (25 a second)" in caught.value.message
    assert "limit of 24 frames (max frames)" in caught.value.message


@pytest.mark.parametrize(
    ("video", "frames"),
    [
        ({"nb_frames": "100", "avg_frame_rate": "25/1"}, 100),  # stated, more than rate x time
        ({"nb_frames": "10", "avg_frame_rate": "1000000/1"}, 2_000_000),  # rate x time, more
        ({"avg_frame_rate": "0/0", "r_frame_rate": "30/1"}, 60),
        ({}, 0),
    ],
)
def test_frames_are_the_stated_count_or_rate_times_duration(
    video: dict[str, Any], frames: int
) -> None:
    assert media_info_from_report(report(**video), 1).frame_count == frames


def test_the_stored_size_is_the_larger_of_width_and_coded_width() -> None:
    info = media_info_from_report(report(coded_width=640, coded_height=368), 1)
    assert (info.width, info.height, info.coded_width, info.coded_height) == (640, 360, 640, 368)
    rotated = media_info_from_report(report(side_data_list=[{"rotation": -90}]), 1)
    assert (rotated.width, rotated.coded_width) == (360, 640)  # stored as it is, not turned


def report(**video: Any) -> dict[str, Any]:
    stream = {"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360}
    return {"format": {"format_name": "mov", "duration": "2.0"}, "streams": [stream | video]}


@pytest.mark.parametrize(
    ("video", "rotation", "size"),
    [
        ({}, 0, (640, 360)),
        ({"side_data_list": [{"rotation": -90}]}, 90, (360, 640)),
        ({"side_data_list": [{"rotation": 90}]}, 270, (360, 640)),
        ({"side_data_list": [{"rotation": 180}]}, 180, (640, 360)),
        ({"side_data_list": [{"rotation": -180}]}, 180, (640, 360)),
        ({"tags": {"rotate": "90"}}, 90, (360, 640)),
        ({"tags": {"rotate": "270"}}, 270, (360, 640)),
        ({"tags": {"rotate": "nonsense"}}, 0, (640, 360)),
        ({"sample_aspect_ratio": "4:3", "width": 480, "height": 360}, 0, (640, 360)),
        ({"sample_aspect_ratio": "0:1"}, 0, (640, 360)),
    ],
)
def test_rotation_and_pixel_shape_give_the_display_size(
    video: dict[str, Any], rotation: int, size: tuple[int, int]
) -> None:
    info = media_info_from_report(report(**video), size_bytes=1)
    assert (info.rotation, (info.width, info.height)) == (rotation, size)


def test_duration_falls_back_to_frames_over_rate() -> None:
    info = media_info_from_report(
        {
            "format": {"format_name": "matroska,webm"},
            "streams": [report(nb_frames="50", avg_frame_rate="25/1")["streams"][0]],
        },
        size_bytes=1,
    )
    assert info.duration_s == 2.0


def test_duration_falls_back_to_the_longest_stream() -> None:
    audio = {"codec_type": "audio", "codec_name": "aac", "duration": "3.5"}
    streams = [*report()["streams"], audio]
    info = media_info_from_report({"format": {"format_name": "mov"}, "streams": streams}, 1)
    assert info.duration_s == 3.5


def test_unknown_duration_is_invalid() -> None:
    with pytest.raises(TaskFailure) as caught:
        media_info_from_report(
            {"format": {"format_name": "h264"}, "streams": report()["streams"]}, size_bytes=1
        )
    assert caught.value.code is FailureCode.INPUT_INVALID


def test_single_frame_video_is_a_still_image() -> None:
    with pytest.raises(TaskFailure) as caught:
        media_info_from_report(report(nb_frames="1"), size_bytes=1)
    assert caught.value.code is FailureCode.INPUT_NO_VIDEO


def test_cover_art_is_not_video_but_a_real_stream_after_it_is() -> None:
    cover = {"codec_type": "video", "codec_name": "png", "disposition": {"attached_pic": 1}}
    audio = {"codec_type": "audio", "codec_name": "aac"}
    with pytest.raises(TaskFailure) as caught:
        media_info_from_report({"format": {"format_name": "mov"}, "streams": [cover, audio]}, 1)
    assert caught.value.code is FailureCode.INPUT_NO_VIDEO
    both = report()
    both["streams"] = [cover, audio, *both["streams"]]
    info = media_info_from_report(both, 1)
    assert (info.video_codec, info.has_audio) == ("h264", True)
