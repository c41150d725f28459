"""Videos through the real API, real workers and real ffmpeg, on generated media."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

import samples
from instance import LiveInstance, free_port, upload, wait_for_outcome
from pg import PostgresCluster
from reelwatch.config import Settings, load_settings
from reelwatch.db.models import Task, Workflow
from reelwatch.engine.spec import TaskContext, WorkflowSpec, register_workflow, workflow_spec
from reelwatch.storage import LocalStore
from reelwatch.videos.pipeline import VIDEO_WORKFLOW, build_video_workflow

PERMANENT = {"input_invalid", "input_no_video", "input_unsupported", "input_too_large"}


def instance_settings(home: Path, database_url: str | None = None) -> Settings:
    return load_settings(
        home=home,
        database_url=database_url,
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=5,
        retry_backoff_scale=0.0,
        max_upload_mb=50,
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveInstance]:
    live = LiveInstance(instance_settings(tmp_path_factory.mktemp("home"))).start()
    yield live
    live.stop()


def ffprobe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_every_good_format_becomes_ready_with_playable_renditions(
    instance: LiveInstance, good_samples: dict[str, Path], tmp_path: Path
) -> None:
    client = instance.client()
    uploaded = {name: upload(client, path) for name, path in good_samples.items()}
    for name, video in uploaded.items():
        final = wait_for_outcome(client, video["id"])
        assert final["status"] == "ready", (name, final["error"])
        assert final["progress"] == 1.0 and final["attempts"] == 1
        assert final["renditions"], name
        for rendition in final["renditions"]:
            response = client.get(rendition["url"])
            assert response.status_code == 200
            target = tmp_path / f"{video['id']}-{rendition['name']}.mp4"
            target.write_bytes(response.content)
            info = ffprobe(target)
            streams = info["streams"]
            video_stream = next(s for s in streams if s["codec_type"] == "video")
            assert video_stream["codec_name"] == "h264"
            assert (video_stream["width"], video_stream["height"]) == (
                rendition["width"],
                rendition["height"],
            )
            # Never upscaled: the rendition is no larger than the source.
            assert rendition["height"] * rendition["width"] <= final["width"] * final["height"]
        thumbnail = client.get(final["thumbnail_url"])
        assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
        events = client.get(f"/api/v1/videos/{video['id']}/events").json()
        kinds = [e["kind"] for e in events if e["kind"] != "notification_queued"]
        assert kinds[0] == "workflow_started" and kinds[-1] == "workflow_succeeded"


def test_first_and_ladder_tasks_make_the_whole_ladder(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    client = instance.client()
    full_hd = wait_for_outcome(client, upload(client, good_samples["1080p"])["id"])
    small = wait_for_outcome(client, upload(client, good_samples["h264"])["id"])
    assert sorted(r["name"] for r in full_hd["renditions"]) == ["480p", "720p"]
    # Smaller than the lowest rung: kept at its own size, named by its real short side.
    assert [r["name"] for r in small["renditions"]] == [f"{small['height']}p"]
    for video in (full_hd, small):
        folder = instance.settings.media_root / "videos" / video["id"]
        for rendition in video["renditions"]:
            assert (folder / f"{rendition['name']}.mp4").stat().st_size == rendition["size_bytes"]
        assert not list(folder.glob(".*.tmp"))
        events = client.get(f"/api/v1/videos/{video['id']}/events").json()
        steps = {e["task"] for e in events if e["kind"] == "task_started"}
        assert steps == {"probe", "first", "ladder", "thumbnail", "finalize"}, steps


def test_the_declared_workflow_makes_the_first_rendition_beside_the_ladder(
    tmp_path: Path,
) -> None:
    settings = load_settings(home=tmp_path, renditions="720,480,1080")
    spec = build_video_workflow(settings, LocalStore(settings.media_root))
    names = [t.name for t in spec.tasks]
    assert names == ["probe", "first", "ladder", "thumbnail", "finalize"]
    first, ladder = spec.tasks[1:3]
    for task, part in ((first, "first"), (ladder, "ladder")):
        assert (task.kind, task.depends_on) == ("transcode", ("probe",))
        assert dict(task.params) == {"rungs": [480, 720, 1080], "part": part}
    assert first.weight == pytest.approx(4.0)
    assert ladder.weight == pytest.approx(4.0 * (1.5**2 + 2.25**2))
    assert spec.tasks[4].depends_on == ("first", "ladder", "thumbnail")


def per_rung_workflow(settings: Settings, store: LocalStore) -> WorkflowSpec:
    """The video workflow as releases before the single-decode ladder declared it: one
    ``transcode_<rung>p`` task per rung, with ``{"rung", "lowest"}`` params."""
    current = build_video_workflow(settings, store)
    probe, transcode, _, thumbnail, finalize = current.tasks
    rungs = settings.rendition_heights
    per_rung = tuple(
        replace(transcode, name=f"transcode_{rung}p", params={"rung": rung, "lowest": i == 0})
        for i, rung in enumerate(rungs)
    )
    names = tuple(t.name for t in per_rung)
    return replace(
        current,
        tasks=(probe, *per_rung, thumbnail, replace(finalize, depends_on=(*names, "thumbnail"))),
    )


def test_a_workflow_planned_with_one_task_per_rung_still_becomes_ready(
    tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    """Rows written by an older release: old params through today's handler, and an
    output of the older shape (one rendition) read by today's finalize and observer."""
    settings = instance_settings(tmp_path / "home")
    live = LiveInstance(settings, workers=0).start()
    store = LocalStore(settings.media_root)
    today = workflow_spec(VIDEO_WORKFLOW)
    register_workflow(per_rung_workflow(settings, store))  # what the API starts
    try:
        video = upload(live.client(), good_samples["1080p"])
    finally:
        register_workflow(today)
    declared = live.workflows[VIDEO_WORKFLOW]
    handler = declared.handler_for("transcode")

    def as_an_older_release_for_480p(ctx: TaskContext) -> dict[str, Any] | None:
        output = handler(ctx)
        if ctx.params.get("rung") != 480 or output is None:
            return output
        (rendition,) = output["renditions"]
        return dict(rendition)  # {"rendition": "480p", "width", "height", "size_bytes"}

    live.workflows[VIDEO_WORKFLOW] = replace(
        declared,
        tasks=tuple(
            replace(t, handler=as_an_older_release_for_480p) if t.kind == "transcode" else t
            for t in declared.tasks
        ),
    )
    try:
        live.add_worker()
        final = wait_for_outcome(live.client(), video["id"])
        with live.db.read() as session:
            tasks = session.scalars(
                select(Task).join(Workflow).where(Workflow.subject_id == video["id"])
            )
            outputs = {task.name: task.output or {} for task in tasks}
    finally:
        live.stop()
    assert final["status"] == "ready", final["error"]
    assert sorted(r["name"] for r in final["renditions"]) == ["480p", "720p"]
    assert set(outputs) == {"probe", "transcode_480p", "transcode_720p", "thumbnail", "finalize"}
    assert outputs["transcode_480p"]["rendition"] == "480p"
    assert [r["rendition"] for r in outputs["transcode_720p"]["renditions"]] == ["720p"]
    assert sorted(outputs["finalize"]["renditions"]) == ["480p", "720p"]


@pytest.mark.parametrize(
    ("size", "renditions"),
    [
        ((640, 360), [("360p", 640, 360)]),  # under the lowest rung (480): its own size
        ((360, 640), [("360p", 360, 640)]),  # vertical: named by its real short side
        ((641, 361), [("360p", 640, 360)]),  # odd: rounded down to even, named so
        ((1280, 720), [("480p", 854, 480), ("720p", 1280, 720)]),
    ],
)
def test_renditions_are_named_by_their_real_short_side_and_never_upscaled(
    instance: LiveInstance,
    tmp_path: Path,
    size: tuple[int, int],
    renditions: list[tuple[str, int, int]],
) -> None:
    width, height = size
    odd = ("-pix_fmt", "yuv444p") if width % 2 or height % 2 else ()  # 4:2:0 cannot be odd
    clip = samples.make_video(
        tmp_path / "clip.mp4", duration_s=0.5, width=width, height=height, extra_args=odd
    )
    client = instance.client()
    final = wait_for_outcome(client, upload(client, clip)["id"])
    assert final["status"] == "ready", final["error"]
    made = sorted((r["name"], r["width"], r["height"]) for r in final["renditions"])
    assert made == renditions
    for name, *_ in made:  # the file is what its name says
        stream = ffprobe(instance.settings.media_root / "videos" / final["id"] / f"{name}.mp4")
        video_stream = next(s for s in stream["streams"] if s["codec_type"] == "video")
        assert f"{min(video_stream['width'], video_stream['height'])}p" == name


def test_non_ascii_file_name_is_kept(instance: LiveInstance, good_samples: dict[str, Path]) -> None:
    client = instance.client()
    path = next(p for p in good_samples.values() if not p.name.isascii())
    video = upload(client, path)
    assert video["filename"] == path.name and video["title"] == path.name


def test_rotated_and_vertical_sources_stay_upright(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    client = instance.client()
    for name in ("vertical", "rotated"):
        final = wait_for_outcome(client, upload(client, good_samples[name])["id"])
        assert final["status"] == "ready"
        assert final["height"] > final["width"], name
        assert all(r["height"] > r["width"] for r in final["renditions"]), name


def test_every_broken_input_fails_permanently_after_one_attempt(
    instance: LiveInstance, broken_samples: dict[str, Path]
) -> None:
    client = instance.client()
    uploaded = {name: upload(client, path) for name, path in broken_samples.items()}
    for name, video in uploaded.items():
        final = wait_for_outcome(client, video["id"])
        assert final["status"] == "failed", name
        assert final["error"]["code"] in PERMANENT, (name, final["error"])
        assert final["error"]["recoverable"] is False
        assert final["attempts"] == 1, name
        events = client.get(f"/api/v1/videos/{video['id']}/events").json()
        kinds = [e["kind"] for e in events if e["kind"] != "notification_queued"]
        assert "retry_scheduled" not in kinds and kinds[-1] == "workflow_failed"
    assert uploaded and all(
        wait_for_outcome(client, v["id"])["error"]["code"] == expected
        for name, v in uploaded.items()
        if (expected := {"audio_only": "input_no_video", "empty": "input_invalid"}.get(name))
    )


def limited_instance(home: Path, **limits: object) -> LiveInstance:
    settings = instance_settings(home)
    return LiveInstance(load_settings(**{**settings.model_dump(), **limits}), workers=1).start()


def failed_once(client: httpx.Client, video_id: str) -> tuple[dict[str, Any], list[Any]]:
    """The video's final state and events, after checking that it failed on its first
    attempt, with no retry."""
    final = wait_for_outcome(client, video_id)
    assert final["status"] == "failed" and final["attempts"] == 1, final
    assert final["error"]["recoverable"] is False
    events = client.get(f"/api/v1/videos/{video_id}/events").json()
    kinds = [e["kind"] for e in events]
    assert "retry_scheduled" not in kinds and kinds.count("task_failed") == 1
    return final, events


def test_hostile_media_fails_permanently_after_one_attempt(tmp_path: Path) -> None:
    """Small files that would cost far more than they look, each refused by its probe."""
    hidden = samples.make_hidden_wide_frames(tmp_path / "narrow.mp4")  # 640x64, shown 64x64
    many = samples.make_video(tmp_path / "many.mp4", duration_s=2, width=80, height=80)
    secret = samples.make_video(tmp_path / "secret.mp4")
    playlist = samples.make_reference_list(tmp_path / "clip.mp4", "hls", str(secret))
    expected = {
        hidden: ("input_too_large", "(max pixels)"),
        many: ("input_too_large", "50 frames (25 a second), more than the limit of 40"),
        playlist: ("input_unsupported", "hls format"),
    }
    live = limited_instance(tmp_path / "home", max_pixels=10_000, max_frames=40)
    try:
        client = live.client()
        uploaded = {path: upload(client, path)["id"] for path in expected}
        for path, (code, words) in expected.items():
            final, events = failed_once(client, uploaded[path])
            assert final["error"]["code"] == code and words in final["error"]["message"], final
            started = [e["task"] for e in events if e["kind"] == "task_started"]
            assert started == ["probe"], started
    finally:
        live.stop()


def test_a_video_needing_more_memory_than_the_cap_fails_once(tmp_path: Path) -> None:
    """ffmpeg runs out of its 300 MB decoding two 4096x4096 frames (a 50 KB file)."""
    huge = samples.make_huge_frames(tmp_path / "huge.mp4")
    live = limited_instance(tmp_path / "home", ffmpeg_memory_mb=300)
    try:
        client = live.client()
        final, events = failed_once(client, upload(client, huge)["id"])
        assert final["error"]["code"] == "input_too_large", final
        assert "300 MB" in final["error"]["message"]
        failed = next(e for e in events if e["kind"] == "task_failed")
        assert "Cannot allocate memory" in failed["data"]["detail"]
        assert_no_server_path(live, [final, events])
    finally:
        live.stop()


def test_what_users_see_of_a_failure_names_no_server_path(
    instance: LiveInstance, broken_samples: dict[str, Path]
) -> None:
    """ffmpeg's stderr names the upload by its absolute path; users see "input"."""
    client = instance.client()
    final, events = failed_once(client, upload(client, broken_samples["truncated"])["id"])
    failed = next(e for e in events if e["kind"] == "task_failed")
    assert "input: corrupt input packet" in failed["data"]["detail"], failed
    assert_no_server_path(instance, [final, events])


def assert_no_server_path(live: LiveInstance, shown: object) -> None:
    text = json.dumps(shown)
    assert str(live.settings.media_root) not in text and "/tmp" not in text, text


def test_another_users_video_is_not_found(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    alice, bob = instance.client("alice@example.com"), instance.client("bob@example.com")
    video = upload(alice, good_samples["h264"])
    base = f"/api/v1/videos/{video['id']}"
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/events"),
        ("POST", f"{base}/retry"),
        ("DELETE", base),
        ("GET", f"{base}/thumbnail"),
        ("GET", f"{base}/renditions/480p"),
    ]:
        response = bob.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    assert video["id"] not in {v["id"] for v in bob.get("/api/v1/videos").json()["videos"]}
    assert video["id"] in {v["id"] for v in alice.get("/api/v1/videos").json()["videos"]}
    admin = instance.client("root@example.com", admin=True)
    assert admin.get(base).status_code == 200


def test_retry_is_refused_where_it_cannot_help(
    instance: LiveInstance, broken_samples: dict[str, Path], good_samples: dict[str, Path]
) -> None:
    """A service failure can be retried (tests/notify/test_honest_signals.py); a file
    that is the problem, or a video that did not fail, cannot."""
    client = instance.client()
    failed = wait_for_outcome(client, upload(client, broken_samples["random_bytes"])["id"])
    refused = client.post(f"/api/v1/videos/{failed['id']}/retry")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_retryable"
    assert "the file itself is the problem: upload a new file" in refused.json()["error"]["message"]
    kinds = [e["kind"] for e in client.get(f"/api/v1/videos/{failed['id']}/events").json()]
    assert kinds.count("workflow_failed") == 1 and "workflow_restarted" not in kinds
    ready = wait_for_outcome(client, upload(client, good_samples["h264"])["id"])
    conflict = client.post(f"/api/v1/videos/{ready['id']}/retry")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "not_retryable"


def test_delete_removes_rows_and_files(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    client = instance.client()
    video = wait_for_outcome(client, upload(client, good_samples["h264"])["id"])
    folder = instance.settings.media_root / "videos" / video["id"]
    assert (folder / "original").is_file()
    assert client.delete(f"/api/v1/videos/{video['id']}").status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/v1/videos/{video['id']}").status_code == 404
    assert client.get(f"/api/v1/videos/{video['id']}/events").status_code == 404


def test_original_is_stored_with_its_checksum(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    client = instance.client()
    path = good_samples["prores"]
    video = upload(client, path)
    stored = instance.settings.media_root / "videos" / video["id"] / "original"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert video["sha256"] == digest == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert video["size_bytes"] == path.stat().st_size


def test_bad_requests_get_clear_json_errors(instance: LiveInstance, tmp_path: Path) -> None:
    client = instance.client()
    anonymous = client.get("/api/v1/videos", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and "token" in anonymous.json()["error"]["message"]
    wrong = client.get("/api/v1/videos", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    not_multipart = client.post("/api/v1/videos", content=b"hello")
    assert not_multipart.status_code == 415
    no_file = client.post("/api/v1/videos", files={"other": ("x", b"123")})
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]["message"]
    bad_filter = client.get("/api/v1/videos", params={"status": "sideways"})
    assert bad_filter.status_code == 422 and bad_filter.json()["error"]["code"] == "invalid_request"


def test_oversized_upload_is_refused_and_nothing_is_kept(
    instance: LiveInstance, tmp_path: Path
) -> None:
    client = instance.client()
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (51 * 1024 * 1024))
    before = set((instance.settings.media_root / "videos").iterdir())
    with big.open("rb") as handle:
        response = client.post("/api/v1/videos", files={"file": (big.name, handle)})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert set((instance.settings.media_root / "videos").iterdir()) == before
    assert not list((instance.settings.media_root / "incoming").glob("*.part"))


def test_pipeline_runs_on_postgresql(
    pg_cluster: PostgresCluster, tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    live = LiveInstance(instance_settings(tmp_path / "home", pg_cluster.create_database()))
    live.start()
    try:
        client = live.client()
        videos = [upload(client, good_samples[name]) for name in ("h264", "vertical", "vp9")]
        assert all(wait_for_outcome(client, v["id"])["status"] == "ready" for v in videos)
    finally:
        live.stop()


def test_status_and_probes(instance: LiveInstance) -> None:
    client = instance.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok",
        "storage": "ok",
    }
    status = client.get("/api/v1/status", headers={"Authorization": ""}).json()
    assert status["status"] == "operational" and status["queue"]["live_workers"] >= 1


def test_admin_bulk_retry_refuses_input_codes(
    instance: LiveInstance, broken_samples: dict[str, Path]
) -> None:
    client = instance.client("dave@example.com")
    failed = wait_for_outcome(client, upload(client, broken_samples["text"])["id"])
    assert failed["error"]["code"] == "input_invalid", failed
    forbidden = client.post("/api/v1/admin/retry", params={"code": "timeout"})
    assert forbidden.status_code == 403
    admin = instance.client("root@example.com", admin=True)
    unknown = admin.post("/api/v1/admin/retry", params={"code": "gremlins"})
    assert unknown.status_code == 422
    refused = admin.post("/api/v1/admin/retry", params={"code": "input_invalid"})
    assert refused.status_code == 409 and "upload a new file" in refused.text
    assert wait_for_outcome(client, failed["id"])["attempts"] == 1
    none_failed = admin.post("/api/v1/admin/retry", params={"code": "timeout"})
    assert none_failed.status_code == 200 and none_failed.json()["restarted"] == []


def test_metrics_and_overview_report_the_load(
    instance: LiveInstance, good_samples: dict[str, Path]
) -> None:
    client = instance.client()
    wait_for_outcome(client, upload(client, good_samples["h264"])["id"])
    response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples_by_name = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples_by_name[("reelwatch_videos", (("status", "ready"),))] >= 1
    assert samples_by_name[("reelwatch_workers_alive", ())] == 2
    assert samples_by_name[("reelwatch_tasks_done_per_minute", ())] > 0
    assert client.get("/api/v1/admin/overview").status_code == 403
    overview = instance.client("root@example.com", admin=True).get("/api/v1/admin/overview")
    body = overview.json()
    assert body["live_workers"] == 2 and len(body["workers"]) >= 2
    assert body["videos"]["by_status"]["ready"] >= 1
    assert 0 <= body["failure_ratio"] <= 1 and body["alerts"] == []
    capacity = body["capacity"]
    assert capacity["measured_videos"] >= 1 and capacity["cost_per_video_minute_s"] > 0
    assert capacity["expected_wait_s"] >= 0 and capacity["workers_needed"] >= 0
    # CPU seconds include the ffmpeg children the workers reaped.
    assert capacity["cpu_per_video_minute_s"] > 0 and capacity["bytes_per_video_minute"] > 0
    status = client.get("/api/v1/status", headers={"Authorization": ""}).json()
    assert status["expected_queue_wait_s"] == capacity["expected_wait_s"]
