"""HLS output and "first playable first", through the real API, workers and ffmpeg."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hls_check import (
    check_hls,
    clip,
    hls_settings,
    hold_after_playable,
    hold_ladder,
    parse_master,
)
from instance import LiveInstance, upload, wait_for_outcome, wait_until
from reelwatch.db.models import Event
from reelwatch.engine.spec import register_workflow, workflow_spec
from reelwatch.storage import LocalStore
from reelwatch.videos.pipeline import VIDEO_WORKFLOW, build_video_workflow


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveInstance]:
    live = LiveInstance(hls_settings(tmp_path_factory.mktemp("home"))).start()
    yield live
    live.stop()


@pytest.mark.parametrize(
    ("recipe", "names"),
    [
        ({"width": 641, "height": 361}, ["240p", "360p"]),  # odd: rounded down to even
        ({"width": 360, "height": 640}, ["240p", "360p"]),  # vertical
        ({"width": 854, "height": 480, "audio": False}, ["240p", "360p"]),  # no sound
        ({"width": 640, "height": 360, "gop": 25}, ["240p", "360p"]),  # source copied
        ({"width": 640, "height": 360, "gop": 1000}, ["240p", "360p"]),  # 9 s GOP: encoded
    ],
    ids=["odd", "vertical", "silent", "remuxed", "long-gop"],
)
def test_every_ladder_makes_valid_aligned_hls(
    instance: LiveInstance, tmp_path: Path, recipe: dict[str, Any], names: list[str]
) -> None:
    client = instance.client()
    video = wait_for_outcome(client, upload(client, clip(tmp_path, "in.mp4", **recipe))["id"])
    assert video["status"] == "ready", video["error"]
    assert sorted(r["name"] for r in video["renditions"]) == names
    durations = check_hls(client, video, tmp_path / "got")
    # Every variant cuts its segments at the same instants: a player switches cleanly.
    first, *others = durations.values()
    assert all(other == pytest.approx(first, abs=0.05) for other in others), durations
    assert len(first) == 3
    folder = instance.settings.media_root / "videos" / video["id"]
    assert not list(folder.glob("**/.*.tmp"))
    remuxed = {r["rendition"]: r["remuxed"] for r in _transcode_outputs(client, video["id"])}
    copied = recipe.get("gop") == 25
    assert remuxed == {name: copied and name == "360p" for name in names}


def _transcode_outputs(client: httpx.Client, video_id: str) -> list[dict[str, Any]]:
    events = client.get(f"/api/v1/videos/{video_id}/events").json()
    return [
        made
        for event in events
        if event["kind"] == "task_succeeded" and event["task"] in ("first", "ladder")
        for made in event["data"].get("renditions", [])
    ]


def test_first_rendition_is_playable_while_the_ladder_is_made(
    tmp_path: Path,
) -> None:
    """The ladder is held back: the lowest rung is listed, in the master playlist and
    announced (``playable``) while the video is still processing; one mail at the end."""
    live = LiveInstance(hls_settings(tmp_path / "home"), workers=2).start()
    release = hold_ladder(live)
    try:
        client = live.client()
        video_id = upload(client, clip(tmp_path, "in.mp4", width=640, height=360))["id"]

        def playable() -> dict[str, Any] | None:
            video = client.get(f"/api/v1/videos/{video_id}").json()
            return video if video["renditions"] else None

        early = wait_until(playable, timeout=60)
        assert early["status"] == "processing" and early["progress"] < 1.0
        assert [r["name"] for r in early["renditions"]] == ["240p"]
        master = parse_master(client.get(early["hls_url"]).text)
        assert [v.uri for v in master] == ["240p/index.m3u8"]
        release.set()
        final = wait_for_outcome(client, video_id)
        whole = parse_master(client.get(final["hls_url"]).text)
    finally:
        release.set()
        live.stop()
    assert final["status"] == "ready"
    assert [v.uri for v in whole] == [
        "240p/index.m3u8",
        "360p/index.m3u8",
    ]
    events = [e["kind"] for e in _events(live, video_id)]
    assert events.count("playable") == 1
    assert events.index("playable") < events.index("workflow_succeeded")
    mails = [e for e in _events(live, video_id) if e["kind"] == "notification_queued"]
    assert len(mails) == 1 and "ready" in mails[0]["data"]["subject"].lower()


def test_the_first_rendition_plays_while_it_is_still_being_encoded(tmp_path: Path) -> None:
    """Its encode is held just after its first segments went out: the video is
    processing, lists no rendition yet, and its master playlist offers the variant as
    an EVENT playlist whose segments play; once released, it ends as VOD, as usual."""
    live = LiveInstance(hls_settings(tmp_path / "home"), workers=2).start()
    ladder = hold_ladder(live)  # the other rendition too: the first is all there is
    release = hold_after_playable(live)
    try:
        client = live.client()
        video_id = upload(client, clip(tmp_path, "in.mp4", width=640, height=360))["id"]

        def streaming() -> dict[str, Any] | None:
            video = client.get(f"/api/v1/videos/{video_id}").json()
            return video if video["hls_url"] else None

        early = wait_until(streaming, timeout=60)
        assert early["status"] == "processing" and early["renditions"] == []
        master = parse_master(client.get(early["hls_url"]).text)
        assert [v.uri for v in master] == ["240p/index.m3u8"]
        assert master[0].attributes["RESOLUTION"] == "426x240"
        base = early["hls_url"].rsplit("/", 1)[0]
        media = client.get(f"{base}/240p/index.m3u8")
        assert "no-cache" in media.headers["cache-control"]
        lines = media.text.splitlines()
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in lines and "#EXT-X-ENDLIST" not in lines
        segments = [line for line in lines if line.startswith("seg-")]
        assert segments and all(
            client.get(f"{base}/240p/{uri}").status_code == 200 for uri in ["init.mp4", *segments]
        )
        assert client.get(f"{base}/240p/early.json").status_code == 404  # never served
        release.set()
        ladder.set()
        final = wait_for_outcome(client, video_id)
        assert final["status"] == "ready", final["error"]
        durations = check_hls(client, final, tmp_path / "got")  # every variant VOD, whole
    finally:
        release.set()
        ladder.set()
        live.stop()
    assert sorted(durations) == ["240p", "360p"]
    events = _events(live, video_id)
    kinds = [e["kind"] for e in events]
    assert kinds.count("playable") == 1
    assert events[kinds.index("playable")]["data"]["renditions"] == ["240p"]
    first_done = next(
        i for i, e in enumerate(events) if e["kind"] == "task_succeeded" and e["task"] == "first"
    )
    assert kinds.index("playable") < first_done


def _events(live: LiveInstance, video_id: str) -> list[dict[str, Any]]:
    with live.db.read() as session:
        rows = session.scalars(select(Event).where(Event.subject_id == video_id).order_by(Event.id))
        return [{"kind": e.kind, "task": e.task, "data": e.data} for e in rows]


HOSTILE = [
    "..%2foriginal",
    "%2e%2e/original",
    "%2e%2e%2foriginal",
    "240p/..%2f..%2foriginal",
    "240p/%2e%2e/%2e%2e/original",
    "%2fetc%2fpasswd",
    "240p/variant.json",
    "240p/seg-1.m4s",
    "240p/seg-00001.m4s.tmp",
    "master.m3u8x",
    "240p/index.m3u8%20",
    "240p/init%20.mp4",
    "%C3%A9/index.m3u8",
    "240p%5cindex.m3u8",
    "240p//index.m3u8",
    "720p/index.m3u8",
    "x" * 5000,
]


def test_hostile_hls_paths_are_refused_cleanly(instance: LiveInstance, tmp_path: Path) -> None:
    client = instance.client()
    video = wait_for_outcome(
        client, upload(client, clip(tmp_path, "in.mp4", width=320, height=240))["id"]
    )
    base = f"/api/v1/videos/{video['id']}/hls"
    assert client.get(f"{base}/240p/index.m3u8").status_code == 200
    for path in HOSTILE:
        response = client.get(f"{base}/{path}")
        assert response.status_code in (404, 422), (path, response.status_code)
        assert response.json()["error"]["code"], path
    assert client.get(f"{base}/240p/index.m3u8%00").status_code == 400
    # Another user's video, and no credentials at all: as for renditions.
    assert instance.client("mallory@example.com").get(f"{base}/master.m3u8").status_code == 404
    assert httpx.get(f"{instance.url}{base}/master.m3u8").status_code == 401


def test_without_mp4_downloads_only_hls_is_made(tmp_path: Path) -> None:
    live = LiveInstance(hls_settings(tmp_path / "home", mp4_downloads=False)).start()
    try:
        client = live.client()
        clip_path = clip(tmp_path, "in.mp4", width=320, height=240, audio=False)
        video = wait_for_outcome(client, upload(client, clip_path)["id"])
        assert video["status"] == "ready", video["error"]
        (rendition,) = video["renditions"]
        assert rendition["url"] is None and rendition["size_bytes"] > 0
        refused = client.get(f"/api/v1/videos/{video['id']}/renditions/240p")
        assert refused.status_code == 404
        folder = live.settings.media_root / "videos" / video["id"]
        assert not list(folder.glob("**/*.mp4*")) or all(
            p.name == "init.mp4" for p in folder.glob("**/*.mp4*")
        )
        check_hls(client, video, tmp_path / "got")
    finally:
        live.stop()


def test_a_workflow_planned_with_one_transcode_still_finishes(tmp_path: Path) -> None:
    """Rows of a release before first/ladder: one ``transcode`` task for the ladder."""
    settings = hls_settings(tmp_path / "home")
    live = LiveInstance(settings, workers=0).start()
    today = workflow_spec(VIDEO_WORKFLOW)
    current = build_video_workflow(settings, LocalStore(settings.media_root))
    probe, first, _, thumbnail, finalize = current.tasks
    single = replace(first, name="transcode", params={"rungs": [240, 360]})
    older = replace(
        current,
        tasks=(probe, single, thumbnail, replace(finalize, depends_on=("transcode", "thumbnail"))),
    )
    register_workflow(older)  # what the API starts
    try:
        client = live.client()
        video = upload(client, clip(tmp_path, "in.mp4", width=640, height=360))
    finally:
        register_workflow(today)
    try:
        live.add_worker()
        final = wait_for_outcome(client, video["id"])
        assert final["status"] == "ready", final["error"]
        assert sorted(r["name"] for r in final["renditions"]) == ["240p", "360p"]
        check_hls(client, final, tmp_path / "got")
        events = client.get(f"/api/v1/videos/{video['id']}/events").json()
        assert {e["task"] for e in events if e["kind"] == "task_started"} == {
            "probe",
            "transcode",
            "thumbnail",
            "finalize",
        }
    finally:
        live.stop()


def test_a_broken_file_found_by_first_fails_the_video_as_before(
    instance: LiveInstance, broken_samples: dict[str, Path]
) -> None:
    """Probing cannot tell a truncated file; the ``first`` task's decode does, and the
    video fails at once: one attempt, never playable, one outcome mail."""
    client = instance.client()
    video = wait_for_outcome(client, upload(client, broken_samples["truncated"])["id"])
    assert (video["status"], video["error"]["code"], video["attempts"]) == (
        "failed",
        "input_invalid",
        1,
    )
    assert video["renditions"] == [] and video["hls_url"] is None
    events = _events(instance, video["id"])
    assert "playable" not in [e["kind"] for e in events]
    mails = [
        e for e in events if e["kind"] == "notification_queued" and e["data"]["channel"] != "alert"
    ]
    assert len(mails) == 1
