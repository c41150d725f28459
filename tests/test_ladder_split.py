"""Who makes which rendition: ``first`` and ``ladder`` side by side when two workers are
free, the whole ladder from one decode under a queue, a browser-ready source copied."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hls_check import clip, hls_settings
from instance import LiveInstance, upload, wait_for_outcome
from reelwatch.db.models import Event
from reelwatch.engine.spec import TaskContext
from reelwatch.failures import FailureCode, TaskFailure
from reelwatch.media import MediaInfo
from reelwatch.videos.pipeline import VIDEO_WORKFLOW
from reelwatch.videos.pipeline.tasks import transcode_part

LADDER = [(240, True), (360, False), (720, False)]
WEBM = MediaInfo(
    duration_s=10.0,
    width=1280,
    height=720,
    rotation=0,
    video_codec="vp9",
    has_audio=True,
    frame_rate=25.0,
    format_name="matroska,webm",
    size_bytes=1_000_000,
)
BROWSER_READY = replace(
    WEBM,
    video_codec="h264",
    video_profile="High",
    pixel_format="yuv420p",
    audio_codec="aac",
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    keyframe_gap_s=2.0,
)


def names(info: MediaInfo, part: str, split: bool) -> list[str]:
    return [plan.name for plan in transcode_part(info, LADDER, part, split).plans]


def test_idle_workers_share_the_ladder_and_a_queue_keeps_it_one_decode() -> None:
    assert (names(WEBM, "first", True), names(WEBM, "ladder", True)) == (
        ["240p"],
        ["360p", "720p"],
    )
    assert (names(WEBM, "first", False), names(WEBM, "ladder", False)) == (
        [],
        ["240p", "360p", "720p"],
    )
    # Split, the rest of the ladder yields the cores to the first playable rendition.
    behind = {
        (part, split): transcode_part(WEBM, LADDER, part, split).behind_first
        for part in ("first", "ladder")
        for split in (True, False)
    }
    assert [key for key, value in behind.items() if value] == [("ladder", True)]


def test_a_browser_ready_source_is_copied_first_whatever_the_queue() -> None:
    for split in (True, False):
        first = transcode_part(BROWSER_READY, LADDER, "first", split)
        assert first.remux and [p.name for p in first.plans] == ["720p"]
        assert names(BROWSER_READY, "ladder", split) == ["240p", "360p"]
        assert transcode_part(BROWSER_READY, LADDER, "ladder", split).behind_first


def test_a_queue_keeps_one_decode_a_lone_video_splits_and_a_failed_part_reruns_alone(
    tmp_path: Path,
) -> None:
    live = LiveInstance(hls_settings(tmp_path / "home"), workers=0).start()
    fail_ladder_once(live)
    try:
        client = live.client()
        queued = [
            upload(client, clip(tmp_path, f"q{n}.mp4", width=640, height=360))["id"]
            for n in range(3)
        ]
        live.add_worker()
        live.add_worker()
        for video_id in queued:
            assert wait_for_outcome(client, video_id)["status"] == "ready"
        # The first probe saw the other uploads waiting: one ffmpeg made the whole ladder.
        assert made_by(live, queued[0]) == {"ladder": ["240p", "360p"]}
        lone = upload(client, clip(tmp_path, "lone.mp4", width=640, height=360))["id"]
        final = wait_for_outcome(client, lone)
    finally:
        live.stop()
    assert final["status"] == "ready"
    assert made_by(live, lone) == {"first": ["240p"], "ladder": ["360p"]}
    starts = [(e.task, e.attempt) for e in events(live, lone) if e.kind == "task_started"]
    assert sorted(starts) == sorted(
        [
            ("probe", 1),
            ("first", 1),
            ("ladder", 1),
            ("ladder", 2),
            ("thumbnail", 1),
            ("finalize", 1),
        ]
    ), "the failed part, and only it, ran again"
    mails = [e for e in events(live, lone) if e.kind == "notification_queued"]
    assert len(mails) == 1


def fail_ladder_once(live: LiveInstance) -> None:
    """Every video's ``ladder`` fails its first attempt (a recoverable failure)."""
    declared = live.workflows[VIDEO_WORKFLOW]
    handler = declared.handler_for("transcode")

    def flaky(ctx: TaskContext) -> dict[str, Any] | None:
        if ctx.params.get("part") == "ladder" and ctx.attempt == 1:
            raise TaskFailure(FailureCode.FFMPEG_CRASHED, "injected by the test")
        return handler(ctx)

    live.workflows[VIDEO_WORKFLOW] = replace(
        declared,
        tasks=tuple(
            replace(t, handler=flaky) if t.kind == "transcode" else t for t in declared.tasks
        ),
    )


def events(live: LiveInstance, video_id: str) -> list[Event]:
    with live.db.read() as session:
        query = select(Event).where(Event.subject_id == video_id).order_by(Event.id)
        return list(session.scalars(query))


def made_by(live: LiveInstance, video_id: str) -> dict[str, list[str]]:
    """The renditions each task made, by task name (those that made none left out)."""
    return {
        e.task: [made["rendition"] for made in e.data["renditions"]]
        for e in events(live, video_id)
        if e.kind == "task_succeeded" and e.task in ("first", "ladder") and e.data.get("renditions")
    }
