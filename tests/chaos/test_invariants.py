"""The chaos suite's checker on made-up evidence: it passes what is right and catches
what is wrong, so a green chaos run means something."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.invariants import (
    Observed,
    expected_renditions,
    no_temporary_files,
    one_outcome_email_per_video,
    retransmissions,
    timeline_problems,
    unrecorded_originals,
)
from chaos.smtp import Delivery

VIDEO_ID = "0123456789abcdef0123456789abcdef"
OWNER = "ana@example.com"


def event(kind: str, task: str | None = None, attempt: int | None = None, **data: Any) -> Any:
    return {
        "at": "2026-01-01T00:00:00Z",
        "kind": kind,
        "task": task,
        "attempt": attempt,
        "worker": "w" if attempt else None,
        "data": data,
    }


def ready_video() -> dict[str, Any]:
    return {
        "id": VIDEO_ID,
        "status": "ready",
        "sha256": "abc",
        "size_bytes": 10,
        "attempts": 2,
        "error": None,
    }


def ready_timeline() -> list[Any]:
    """A video whose transcode was retried once after its worker was lost."""
    return [
        event(
            "workflow_started",
            upload={"sha256": "abc", "size_bytes": 10},
            tasks=["probe", "transcode_120p", "thumbnail", "finalize"],
        ),
        event("task_queued", "probe", 0),
        event("task_started", "probe", 1),
        event("task_succeeded", "probe", 1),
        event("task_queued", "transcode_120p", 0),
        event("task_queued", "thumbnail", 0),
        event("task_started", "transcode_120p", 1),
        event("task_failed", "transcode_120p", 1, code="worker_lost"),
        event("retry_scheduled", "transcode_120p", 1),
        event("task_started", "thumbnail", 1),
        event("task_released", "thumbnail", 1),
        event("task_started", "thumbnail", 1),
        event("task_succeeded", "thumbnail", 1),
        event("task_started", "transcode_120p", 2),
        event("task_progress", "transcode_120p", 2, progress=0.5),
        event("task_succeeded", "transcode_120p", 2),
        event("task_queued", "finalize", 0),
        event("task_started", "finalize", 1),
        event("task_succeeded", "finalize", 1),
        event("workflow_succeeded"),
        event("notification_queued", to=OWNER, subject="Your video is ready: x"),
    ]


def test_a_consistent_timeline_passes() -> None:
    assert timeline_problems(ready_video(), ready_timeline(), OWNER) == []


def test_a_task_started_before_its_dependencies_succeeded_is_caught() -> None:
    events = ready_timeline()
    finalize = [e for e in events if e["task"] == "finalize"]
    for moved in finalize:
        events.remove(moved)
    events[7:7] = finalize  # right after the first transcode attempt started
    problems = timeline_problems(ready_video(), events, OWNER)
    assert any("finalize started before" in p for p in problems), problems


def test_a_skipped_attempt_a_second_outcome_and_a_late_event_are_caught() -> None:
    events = ready_timeline()
    events[13] = event("task_started", "transcode_120p", 3)
    events.insert(-1, event("workflow_failed", code="unknown"))
    events.append(event("notification_queued", to=OWNER, subject="Your video is ready: x"))
    problems = " | ".join(timeline_problems(ready_video(), events, OWNER))
    assert "started as attempt 3, expected 2" in problems
    assert "terminal events ['workflow_succeeded', 'workflow_failed']" in problems
    assert "2 outcome notifications" in problems


def test_a_ready_video_with_unfinished_tasks_is_caught() -> None:
    events = [e for e in ready_timeline() if e["task"] != "finalize"]
    problems = timeline_problems(ready_video(), events, OWNER)
    assert any("tasks left {'finalize': 'waiting'}" in p for p in problems), problems


def mail(message_id: str, subject: str = "Your video is ready: x") -> Delivery:
    return Delivery(datetime.now(UTC), message_id, (OWNER,), subject, accepted=True)


def observed(deliveries: list[Delivery], media_root: Path = Path("/nonexistent")) -> Observed:
    return Observed(
        videos={VIDEO_ID: ready_video()},
        owners={VIDEO_ID: OWNER},
        events={},
        accepted=[],
        samples=[],
        deliveries=deliveries,
        outbox=[],
        media_root=media_root,
        rendition_heights=(120, 240),
    )


def test_the_same_email_sent_twice_is_one_email_but_two_emails_are_a_violation() -> None:
    outcome = f"<email.video.{VIDEO_ID}.outcome.run1@reelwatch>"
    resent = [mail(outcome), mail(outcome)]
    assert one_outcome_email_per_video(observed(resent)).held
    assert retransmissions(resent) == 1
    second_run = f"<email.video.{VIDEO_ID}.outcome.run2@reelwatch>"
    twice = one_outcome_email_per_video(observed([mail(outcome), mail(second_run)]))
    assert not twice.held and "2 distinct outcome e-mails" in twice.violations[0]
    wrong = one_outcome_email_per_video(observed([mail(outcome, "We could not process")]))
    assert not wrong.held
    assert not one_outcome_email_per_video(observed([])).held


def test_leftover_temporary_and_orphaned_files_are_caught(tmp_path: Path) -> None:
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "abc.part").write_bytes(b"half")
    kept = tmp_path / "videos" / VIDEO_ID
    kept.mkdir(parents=True)
    (kept / "original").write_bytes(b"v")
    (kept / ".240p.mp4.1a2b.tmp").write_bytes(b"x")
    (tmp_path / "videos" / ("f" * 32)).mkdir()
    unrecorded = tmp_path / "videos" / ("e" * 32)  # stored, then the server died
    unrecorded.mkdir()
    (unrecorded / "original").write_bytes(b"u")
    (unrecorded / "upload.json").write_bytes(b"{}")
    half = tmp_path / "videos" / ("d" * 32)  # died writing the manifest
    half.mkdir()
    (half / ".upload.json.0a1b2c3d.tmp").write_bytes(b"{")
    result = no_temporary_files(observed([], media_root=tmp_path))
    found = " | ".join(result.violations)
    assert "incoming/abc.part" in found and ".240p.mp4.1a2b.tmp" in found
    assert "folder of no known video: videos/ffff" in found and "original" not in found
    assert "upload.json" not in found
    assert unrecorded_originals(observed([], media_root=tmp_path)) == ["d" * 32, "e" * 32]


def test_the_ladder_keeps_rungs_that_fit_and_always_the_lowest() -> None:
    assert expected_renditions(320, 240, (120, 240)) == ["120p", "240p"]
    assert expected_renditions(360, 640, (120, 240, 480)) == ["120p", "240p"]
    assert expected_renditions(100, 80, (120, 240)) == ["120p"]
