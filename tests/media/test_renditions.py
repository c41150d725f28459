"""Planning renditions, and transcoding and thumbnailing every good sample with real ffmpeg."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

import samples
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media import (
    FfmpegCancelled,
    FfmpegLimits,
    MediaInfo,
    RenditionPlan,
    Targets,
    Variant,
    make_renditions,
    make_thumbnail,
    plan_rendition,
    probe_media,
    transcode,
    transcode_renditions,
    verify_rendition,
)
from reelwatch.media.renditions import thumbnail_size, transcode_args
from small_disk import small_disk

LIMITS = FfmpegLimits(stall_timeout_s=30, timeout_s=120)
RUNG = 240


def info_of(width: int, height: int) -> MediaInfo:
    return MediaInfo(10.0, width, height, 0, "h264", True, 25.0, "mov", 1)


@pytest.mark.parametrize(
    ("source", "rung", "lowest", "planned"),
    [
        ((1920, 1080), 720, False, (1280, 720)),
        ((1920, 1080), 480, False, (854, 480)),
        ((1080, 1920), 720, False, (720, 1280)),  # vertical: the rung is the short side
        ((1280, 720), 720, False, (1280, 720)),  # same size is not an upscale
        ((640, 360), 720, False, None),  # never upscale
        ((640, 360), 720, True, (640, 360)),  # ...but the lowest rung is always made
        ((640, 360), 480, True, (640, 360)),  # named 360p, not 480p
        ((360, 640), 480, True, (360, 640)),
        ((321, 241), 240, False, (320, 240)),  # odd sizes come out even
        ((321, 241), 480, True, (320, 240)),
        ((427, 240), 240, False, (426, 240)),
        ((1440, 1080), 480, False, (640, 480)),
        ((4096, 2160), 1080, False, (2048, 1080)),
        ((1920, 1080), 481, False, (854, 480)),  # an odd rung still gives even sides
        ((3, 3), 240, True, (2, 2)),
    ],
)
def test_plan_rendition(
    source: tuple[int, int], rung: int, lowest: bool, planned: tuple[int, int] | None
) -> None:
    plan = plan_rendition(info_of(*source), rung, lowest=lowest)
    if planned is None:
        assert plan is None
    else:
        width, height = planned
        # Named by the short side it really has (the height, but for vertical video).
        assert plan == RenditionPlan(f"{min(width, height)}p", width, height)


@pytest.mark.parametrize("rung", [144, 240, 360, 480, 720, 1080])
def test_plans_are_even_never_upscaled_and_keep_the_shape(rung: int) -> None:
    for width in range(97, 2100, 61):
        for height in range(101, 2100, 83):
            plan = plan_rendition(info_of(width, height), rung, lowest=True)
            assert plan is not None
            assert plan.width % 2 == 0 and plan.height % 2 == 0
            assert plan.width <= max(2, width) and plan.height <= max(2, height)
            assert plan.width / plan.height == pytest.approx(width / height, rel=0.02, abs=0.03)


@pytest.mark.parametrize("name", samples.GOOD_SAMPLES)
def test_every_good_sample_transcodes_to_a_verified_web_mp4(
    name: str,
    good_samples: dict[str, Path],
    good_infos: dict[str, MediaInfo],
    tmp_path: Path,
) -> None:
    info = good_infos[name]
    plan = plan_rendition(info, RUNG, lowest=True)
    assert plan is not None
    destination = tmp_path / f"{plan.name}.mp4"
    progress: list[float] = []
    transcode(
        good_samples[name], destination, plan, info, limits=LIMITS, on_progress=progress.append
    )
    result = verify_rendition(destination, plan, expected_duration_s=info.duration_s)
    assert (result.width, result.height, result.rotation) == (plan.width, plan.height, 0)
    assert result.has_audio is info.has_audio
    assert progress and progress == sorted(progress) and 0 < progress[-1] <= 1
    assert _top_level_boxes(destination).index("moov") < _top_level_boxes(destination).index("mdat")
    assert [p.name for p in tmp_path.iterdir()] == [destination.name], "temporary file left"
    streams = _ffprobe_streams(destination)
    assert streams[0]["pix_fmt"] == "yuv420p"
    assert streams[0].get("sample_aspect_ratio", "1:1") == "1:1"
    assert not streams[0].get("side_data_list"), "rotation metadata left on the rendition"


def test_rotated_video_comes_out_upright(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    info = good_infos["rotated"]
    plan = plan_rendition(info, RUNG, lowest=True)
    assert plan == RenditionPlan("240p", 240, 426)  # vertical: named by its short side
    destination = tmp_path / "240p.mp4"
    transcode(good_samples["rotated"], destination, plan, info, limits=LIMITS)
    top, bottom = _top_and_bottom_brightness(destination, plan.width, plan.height)
    assert top > 200 and bottom < 50, "the picture is not upright"


def test_truncated_source_fails_as_invalid_and_leaves_no_file(
    broken_samples: dict[str, Path], tmp_path: Path
) -> None:
    source = broken_samples["truncated"]
    info = probe_media(source)
    plan = plan_rendition(info, RUNG, lowest=True)
    assert plan is not None
    with pytest.raises(TaskFailure) as caught:
        transcode(source, tmp_path / "240p.mp4", plan, info, limits=LIMITS)
    assert caught.value.code is FailureCode.INPUT_INVALID
    assert "partial file" in caught.value.detail
    assert list(tmp_path.iterdir()) == []


def test_source_that_ends_early_fails_as_invalid(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    """No "partial file" words here: the container simply promises more than there is."""
    promised = good_infos["h264"]
    claimed_longer = MediaInfo(**{**promised.__dict__, "duration_s": 3.0})
    plan = plan_rendition(promised, RUNG, lowest=True)
    assert plan is not None
    with pytest.raises(TaskFailure) as caught:
        transcode(good_samples["h264"], tmp_path / "x.mp4", plan, claimed_longer, limits=LIMITS)
    assert caught.value.code is FailureCode.INPUT_INVALID
    assert "ends early" in caught.value.message


def test_transcode_replaces_an_earlier_file_and_honours_the_thread_limit(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    info = good_infos["h264"]
    plan = RenditionPlan("240p", 320, 240)
    destination = tmp_path / "240p.mp4"
    destination.write_bytes(b"half a file from a crashed attempt")
    transcode(good_samples["h264"], destination, plan, info, limits=FfmpegLimits(threads=1))
    verify_rendition(destination, plan, expected_duration_s=info.duration_s)


def test_missing_destination_folder_is_a_storage_problem(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    with pytest.raises(TaskFailure) as caught:
        transcode(
            good_samples["h264"],
            tmp_path / "gone" / "240p.mp4",
            RenditionPlan("240p", 320, 240),
            good_infos["h264"],
            limits=LIMITS,
        )
    assert caught.value.code is FailureCode.STORAGE_UNAVAILABLE


@pytest.mark.parametrize("name", samples.GOOD_SAMPLES)
def test_thumbnail_is_a_small_jpeg_of_the_same_shape(
    name: str, good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    info = good_infos[name]
    destination = tmp_path / "thumbnail.jpg"
    make_thumbnail(good_samples[name], destination, info, limits=LIMITS)
    assert destination.read_bytes()[:2] == b"\xff\xd8"
    stream = _ffprobe_streams(destination)[0]
    width, height = thumbnail_size(info, 320)
    assert (stream["width"], stream["height"]) == (width, height)
    assert width <= 320 and height % 2 == 0
    assert width / height == pytest.approx(info.width / info.height, rel=0.02)
    assert [p.name for p in tmp_path.iterdir()] == ["thumbnail.jpg"]


def test_rotated_thumbnail_is_upright(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    destination = tmp_path / "thumbnail.jpg"
    make_thumbnail(good_samples["rotated"], destination, good_infos["rotated"], limits=LIMITS)
    top, bottom = _top_and_bottom_brightness(
        destination, *thumbnail_size(good_infos["rotated"], 320)
    )
    assert top > 200 and bottom < 50


def test_thumbnail_of_a_video_shorter_than_its_seek_falls_back_to_the_first_frame(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    claimed_long = MediaInfo(**{**good_infos["h264"].__dict__, "duration_s": 600.0})
    destination = tmp_path / "thumbnail.jpg"
    make_thumbnail(good_samples["h264"], destination, claimed_long, limits=LIMITS)
    assert destination.read_bytes()[:2] == b"\xff\xd8"


def test_verify_rendition_refuses_what_was_not_planned(good_samples: dict[str, Path]) -> None:
    """reelwatch's own mistakes: unknown, never blamed on the upload."""
    h264 = good_samples["h264"]
    cases = [
        (h264, RenditionPlan("240p", 426, 240), 1.0, "320x240, not 426x240"),
        (h264, RenditionPlan("240p", 320, 240), 0.3, "lasts 1.00 s, not 0.30 s"),
        (good_samples["vp9"], RenditionPlan("240p", 320, 240), 1.0, "codec vp9"),
    ]
    for path, plan, duration, words in cases:
        with pytest.raises(TaskFailure) as caught:
            verify_rendition(path, plan, expected_duration_s=duration)
        assert caught.value.code is FailureCode.UNKNOWN, words
        assert words in caught.value.message


def test_verify_rendition_blames_the_source_for_a_short_or_unreadable_rendition(
    good_samples: dict[str, Path], broken_samples: dict[str, Path]
) -> None:
    """What the one probe of a rendition also tells: ffmpeg ran out of source early."""
    plan = RenditionPlan("240p", 320, 240)
    cases = [
        (good_samples["h264"], 5.0, "only 1.0 s of its 5.0 s"),
        (broken_samples["random_bytes"], 1.0, "only 0.0 s of its 1.0 s"),
    ]
    for path, duration, words in cases:
        with pytest.raises(TaskFailure) as caught:
            verify_rendition(path, plan, expected_duration_s=duration, detail="ffmpeg said")
        assert caught.value.code is FailureCode.INPUT_INVALID, words
        assert "ends early" in caught.value.message and words in caught.value.message
        assert "ffmpeg said" in caught.value.detail


def test_a_ladder_is_decoded_once_and_every_rendition_is_verified(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    info = good_infos["h264"]
    plans = [RenditionPlan("120p", 160, 120), RenditionPlan("240p", 320, 240)]
    outputs = [(plan, tmp_path / f"{plan.name}.mp4") for plan in plans]
    args = transcode_args(good_samples["h264"], outputs, info, LIMITS)
    assert args.count("-i") == 1 and "split=2[s0][s1]" in args[args.index("-filter_complex") + 1]
    (tmp_path / ".240p.mp4.0a1b2c3d.tmp").write_bytes(b"debris of a SIGKILLed attempt")
    progress: list[float] = []
    verified = transcode_renditions(
        good_samples["h264"], outputs, info, limits=LIMITS, on_progress=progress.append
    )
    assert [(v.width, v.height, v.video_codec) for v in verified] == [
        (160, 120, "h264"),
        (320, 240, "h264"),
    ]
    assert all(v.has_audio and v.duration_s == pytest.approx(1.0, abs=0.1) for v in verified)
    assert [v.size_bytes for v in verified] == [path.stat().st_size for _, path in outputs]
    assert progress and progress == sorted(progress) and 0 < progress[-1] <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["120p.mp4", "240p.mp4"]


def test_a_ladder_honours_the_thread_limit(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    plans = [RenditionPlan("120p", 160, 120), RenditionPlan("240p", 320, 240)]
    outputs = [(plan, tmp_path / f"{plan.name}.mp4") for plan in plans]
    limits = FfmpegLimits(threads=1)
    args = transcode_args(good_samples["h264"], outputs, good_infos["h264"], limits)
    assert args[: args.index("-i")].count("-filter_complex_threads") == 1
    assert args.count("-threads") == 1 + len(plans)  # the decoder, and each encoder
    transcode_renditions(good_samples["h264"], outputs, good_infos["h264"], limits=limits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["120p.mp4", "240p.mp4"]


def test_a_failed_ladder_leaves_the_earlier_files_and_no_debris(
    broken_samples: dict[str, Path], tmp_path: Path
) -> None:
    """Nothing is renamed into place unless the whole run succeeded."""
    source = broken_samples["truncated"]
    info = probe_media(source)
    plans = [RenditionPlan("120p", 160, 120), RenditionPlan("240p", 320, 240)]
    outputs = [(plan, tmp_path / f"{plan.name}.mp4") for plan in plans]
    outputs[1][1].write_bytes(b"the file of an earlier run")
    with pytest.raises(TaskFailure) as caught:
        transcode_renditions(source, outputs, info, limits=LIMITS)
    assert caught.value.code is FailureCode.INPUT_INVALID
    assert [p.name for p in tmp_path.iterdir()] == ["240p.mp4"]
    assert outputs[1][1].read_bytes() == b"the file of an earlier run"


def test_a_cancelled_ladder_leaves_no_debris(long_video: Path, tmp_path: Path) -> None:
    info = probe_media(long_video)
    plans = [RenditionPlan("120p", 214, 120), RenditionPlan("240p", 426, 240)]
    outputs = [(plan, tmp_path / f"{plan.name}.mp4") for plan in plans]
    cancel = threading.Event()

    def cancel_once_under_way(fraction: float) -> None:
        # The temporary files exist by the time ffmpeg reports encoded time.
        assert len(list(tmp_path.iterdir())) == len(plans)
        cancel.set()

    with pytest.raises(FfmpegCancelled):
        transcode_renditions(
            long_video,
            outputs,
            info,
            limits=LIMITS,
            on_progress=cancel_once_under_way,
            cancel=cancel,
        )
    assert list(tmp_path.iterdir()) == []


def _ladder_targets(folder: Path) -> Targets:
    return Targets(lambda name: folder / f"{name}.mp4", folder / "hls", keep_mp4=True)


def test_the_first_variant_plays_while_the_ladder_is_still_encoded(
    long_video: Path, tmp_path: Path
) -> None:
    """Its segments are handed over as ffmpeg finishes them, under an EVENT playlist;
    at the end every variant is a VOD with its marker, and ffmpeg's playlist is gone."""
    info = probe_media(long_video)  # 20 s: five 4 s segments
    plans = [RenditionPlan("240p", 426, 240), RenditionPlan("360p", 640, 360)]
    hls_dir = tmp_path / "hls"
    early: list[tuple[str, list[str], str]] = []

    def publish(plan: RenditionPlan, files: list[str], variant: Variant) -> None:
        folder = hls_dir / plan.name
        assert all((folder / name).is_file() for name in files)
        assert variant.codecs.startswith("avc1.") and variant.bandwidth > 0
        early.append((plan.name, files, (folder / "index.m3u8").read_text()))

    made = make_renditions(
        long_video, plans, info, _ladder_targets(tmp_path), limits=LIMITS, publish_early=publish
    )
    name, files, playlist = early[0]
    assert name == "240p" and files[0] == "init.mp4" and files[-1] == "index.m3u8"
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist
    assert 1 <= sum(f.startswith("seg-") for f in files) < 5  # before the encode ended
    assert all(name == "240p" for name, _, _ in early)
    segments = [f"seg-{n:05d}.m4s" for n in range(1, 6)]
    for m in made:
        final = (hls_dir / m.plan.name / "index.m3u8").read_text().splitlines()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in final and final[-1] == "#EXT-X-ENDLIST"
        assert [line for line in final if line.startswith("seg-")] == segments
        left = {p.name for p in (hls_dir / m.plan.name).iterdir()}
        assert left - {"early.json"} == {"index.m3u8", "init.mp4", "variant.json", *segments}
        assert m.mp4_bytes == (tmp_path / f"{m.plan.name}.mp4").stat().st_size


def test_a_ladder_cancelled_after_it_began_to_play_leaves_no_variant(
    long_video: Path, tmp_path: Path
) -> None:
    cancel = threading.Event()
    plans = [RenditionPlan("240p", 426, 240)]
    with pytest.raises(FfmpegCancelled):
        make_renditions(
            long_video,
            plans,
            probe_media(long_video),
            _ladder_targets(tmp_path),
            limits=LIMITS,
            publish_early=lambda *_: cancel.set(),
            cancel=cancel,
        )
    assert list(tmp_path.iterdir()) == [tmp_path / "hls"]
    assert list((tmp_path / "hls").iterdir()) == []


def _top_level_boxes(path: Path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if size < 8:
            break
        offset += size
    return boxes


def _ffprobe_streams(path: Path) -> list[dict[str, object]]:
    streams = samples.ffprobe_json(path, "-show_streams", "-select_streams", "v")["streams"]
    return streams  # type: ignore[return-value]


def _top_and_bottom_brightness(path: Path, width: int, height: int) -> tuple[float, float]:
    """Mean brightness of the top and bottom eighth of the first frame as stored, unrotated."""
    command = ["ffmpeg", "-v", "error", "-noautorotate", "-i", f"file:{path}", "-frames:v", "1"]
    result = subprocess.run(
        [*command, "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    pixels, band = result.stdout, width * (height // 8)
    assert len(pixels) == width * height
    return sum(pixels[:band]) / band, sum(pixels[-band:]) / band


def test_a_disk_that_fills_while_transcoding_is_disk_full_not_a_bad_input(
    good_samples: dict[str, Path], good_infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    """ffmpeg exits 0 with an incomplete file when the disk fills (found by the chaos
    suite, which saw good videos fail for good as "the file ends early")."""
    info = good_infos["h264"]
    with small_disk(tmp_path / "small-disk", 32) as folder:
        with pytest.raises(TaskFailure) as caught:
            plan = RenditionPlan("240p", 320, 240)
            transcode(good_samples["h264"], folder / "240p.mp4", plan, info, limits=LIMITS)
        assert caught.value.code is FailureCode.DISK_FULL
        assert list(folder.iterdir()) == []
