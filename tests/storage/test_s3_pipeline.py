"""Videos through the real API, workers and ffmpeg with their media in a bucket (moto's
S3 server in a subprocess): downloads by redirect and proxied, nothing left on local
disk, delete, gc, backup and restore, doctor."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hls_check import clip, hold_after_playable, hold_ladder
from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from reelwatch.cli.main import app
from reelwatch.config import Settings, load_settings
from reelwatch.database import Database, utcnow
from reelwatch.operations.gc import collect, find_garbage
from reelwatch.storage import open_store
from s3server import MotoServer, keys

runner = CliRunner()


def bucket_settings(home: Path, bucket: str, **extra: object) -> Settings:
    return load_settings(
        home=home,
        bind=f"127.0.0.1:{free_port()}",
        storage_url=f"s3://{bucket}/site",
        lease_seconds=5,
        retry_backoff_scale=0.0,
        max_upload_mb=50,
        **extra,
    )


def local_media(home: Path) -> list[Path]:
    """Every file of a video on this machine's disk: its media folder and the scratch."""
    folders = [home / "media" / "videos", home / "scratch"]
    found = [p for f in folders if f.exists() for p in f.rglob("*") if p.is_file()]
    return [p for p in found if p.name != ".lock"]  # a live process's scratch lock


def test_a_video_in_a_bucket_is_processed_served_and_deleted(
    s3: MotoServer, bucket: str, tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    instance = LiveInstance(bucket_settings(home, bucket), workers=2).start()
    proxy = LiveInstance(bucket_settings(home, bucket, s3_downloads="proxy"), workers=0).start()
    try:
        client = instance.client()
        sample = good_samples["h264"]
        video = upload(client, sample)
        final = wait_for_outcome(client, video["id"])
        assert final["status"] == "ready", final["error"]
        prefix = f"site/videos/{video['id']}/"
        stored = keys(s3.client(), bucket, prefix)
        names = {key.removeprefix(prefix) for key in stored}
        assert {"original", "upload.json", "thumbnail.jpg"} <= names
        assert {f"{r['name']}.mp4" for r in final["renditions"]} <= names
        assert stored[prefix + "original"] == sample.stat().st_size
        assert local_media(home) == [], "nothing of a ready video stays on local disk"

        rendition = final["renditions"][0]
        redirect = client.get(rendition["url"])
        assert redirect.status_code == 307
        assert redirect.headers["location"].startswith(s3.url)
        assert "authorization" not in redirect.headers["location"].lower()
        followed = httpx.get(redirect.headers["location"])
        assert followed.status_code == 200
        rendition_key = prefix + f"{rendition['name']}.mp4"
        assert len(followed.content) == stored[rendition_key]
        assert followed.headers["content-type"] == "video/mp4"
        assert client.get(f"/api/v1/videos/{video['id']}/thumbnail").status_code == 307

        # The same user, through the server that proxies downloads.
        through = httpx.Client(
            base_url=proxy.url, headers={"Authorization": client.headers["authorization"]}
        )
        proxied = through.get(rendition["url"].replace(instance.url, ""))
        assert proxied.status_code == 200 and proxied.content == followed.content
        ranged = through.get(
            rendition["url"].replace(instance.url, ""), headers={"Range": "bytes=10-19"}
        )
        assert ranged.status_code == 206 and ranged.content == followed.content[10:20]
        assert ranged.headers["content-range"].startswith("bytes 10-19/")
        beyond = through.get(
            rendition["url"].replace(instance.url, ""), headers={"Range": "bytes=999999999-"}
        )
        assert beyond.status_code == 416 and beyond.json()["error"]["code"]
        thumbnail = through.get(f"/api/v1/videos/{video['id']}/thumbnail")
        assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"

        # HLS from the bucket: the playlists from the API, the segments proxied or by
        # a redirect, each as stored.
        master = through.get(final["hls_url"].replace(instance.url, ""))
        assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text
        variant = master.text.split("#EXT-X-STREAM-INF", 1)[1].splitlines()[1]
        base = final["hls_url"].replace(instance.url, "").rsplit("/", 1)[0]
        playlist = through.get(f"{base}/{variant}")
        assert playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
        segment = next(line for line in playlist.text.splitlines() if line.endswith(".m4s"))
        segment_path = f"{base}/{variant.rsplit('/', 1)[0]}/{segment}"
        proxied_segment = through.get(segment_path)
        segment_key = prefix + f"hls/{variant.rsplit('/', 1)[0]}/{segment}"
        assert proxied_segment.status_code == 200
        assert len(proxied_segment.content) == stored[segment_key]
        redirected = client.get(segment_path.replace(instance.url, ""))
        assert redirected.status_code == 307
        assert httpx.get(redirected.headers["location"]).content == proxied_segment.content

        stranger = instance.client("mallory@example.com")
        assert stranger.get(rendition["url"]).status_code == 404, "same authorisation"
        for hostile in ["..%2F..%2Fupload.json", "480p.mp4%00", "a" * 300, "%2e%2e"]:
            answer = client.get(f"/api/v1/videos/{video['id']}/renditions/{hostile}")
            assert 400 <= answer.status_code < 500, hostile
        for hostile_id in ["..", "..%2Fx", "a" * 33, "%00"]:
            assert 400 <= client.get(f"/api/v1/videos/{hostile_id}/thumbnail").status_code < 500

        assert client.delete(f"/api/v1/videos/{video['id']}").status_code == 204
        assert keys(s3.client(), bucket, prefix) == {}
    finally:
        proxy.stop()
        instance.stop()


def test_a_video_in_a_bucket_plays_while_its_first_rendition_is_encoded(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    """The first segments are uploaded as they are made: the API reads the growing
    playlist and the early variant info from the bucket; at the end the playlist in the
    bucket is the VOD one."""
    home = tmp_path / "home"
    instance = LiveInstance(bucket_settings(home, bucket, renditions="240,360"), workers=2)
    instance.start()
    ladder, release = hold_ladder(instance), hold_after_playable(instance)
    try:
        client = instance.client()
        video_id = upload(client, clip(tmp_path, "in.mp4", width=640, height=360))["id"]
        early = wait_until(lambda: _with_hls_url(client, video_id), timeout=60)
        assert early["renditions"] == []
        base = early["hls_url"].rsplit("/", 1)[0]
        assert "240p/index.m3u8" in client.get(early["hls_url"]).text
        growing = client.get(f"{base}/240p/index.m3u8").text
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing
        segment = next(line for line in growing.splitlines() if line.endswith(".m4s"))
        redirect = client.get(f"{base}/240p/{segment}")
        assert redirect.status_code == 307 and httpx.get(redirect.headers["location"]).content
        release.set()
        ladder.set()
        assert wait_for_outcome(client, video_id)["status"] == "ready"
        final = client.get(f"{base}/240p/index.m3u8").text
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in final and "#EXT-X-ENDLIST" in final
    finally:
        release.set()
        ladder.set()
        instance.stop()


def _with_hls_url(client: httpx.Client, video_id: str) -> dict[str, object] | None:
    video = client.get(f"/api/v1/videos/{video_id}").json()
    return video if video["hls_url"] else None


def test_gc_backup_restore_and_doctor_work_on_the_bucket(
    s3: MotoServer,
    bucket: str,
    tmp_path: Path,
    good_samples: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    settings = bucket_settings(home, bucket)
    instance = LiveInstance(settings, workers=1).start()
    try:
        client = instance.client()
        video_id = upload(client, good_samples["h264"])["id"]
        assert wait_for_outcome(client, video_id)["status"] == "ready"
    finally:
        instance.stop()
    s3c = s3.client()
    orphan = "c" * 32  # stored, never recorded
    s3c.put_object(Bucket=bucket, Key=f"site/videos/{orphan}/original", Body=b"x" * 1000)
    s3c.create_multipart_upload(Bucket=bucket, Key=f"site/videos/{'d' * 32}/original")

    store = open_store(settings)
    db = Database(settings.resolved_database_url)
    try:
        now = utcnow()
        # The fresh orphan may be an upload being recorded: kept. (moto dates every
        # multipart upload 2010-11-10, so the unfinished one is a day old already.)
        fresh = find_garbage(db, store, now=now, retention_days=0, orphan_retention_days=7)
        assert [g.reason for g in fresh] == ["temporary file of an interrupted write"]
        later = find_garbage(
            db, store, now=now + timedelta(days=2), retention_days=0, orphan_retention_days=7
        )
        assert sorted(g.reason for g in later) == [
            "no video row (stored, never recorded)",
            "temporary file of an interrupted write",
        ]
        collect(db, store, later)
    finally:
        db.dispose()
    assert keys(s3c, bucket, f"site/videos/{orphan}/") == {}
    assert s3c.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    kept = keys(s3c, bucket, f"site/videos/{video_id}/")
    assert f"site/videos/{video_id}/original" in kept

    env = {"REELWATCH_HOME": str(home), "REELWATCH_STORAGE_URL": f"s3://{bucket}/site"}
    saved = runner.invoke(app, ["backup", str(tmp_path / "backup")], env=env)
    assert saved.exit_code == 0, saved.output
    backed = tmp_path / "backup" / "media" / "videos" / video_id / "original"
    assert backed.read_bytes() == good_samples["h264"].read_bytes()

    elsewhere = s3.new_bucket()
    env2 = {"REELWATCH_HOME": str(tmp_path / "new"), "REELWATCH_STORAGE_URL": f"s3://{elsewhere}"}
    restored = runner.invoke(app, ["restore", str(tmp_path / "backup")], env=env2)
    assert restored.exit_code == 0, restored.output
    assert "every original matches" in restored.output
    again = keys(s3c, elsewhere)
    assert {k.removeprefix("videos/") for k in again} == {
        k.removeprefix("site/videos/") for k in kept
    }
    original = s3c.get_object(Bucket=elsewhere, Key=f"videos/{video_id}/original")["Body"].read()
    assert hashlib.sha256(original).hexdigest() == hashlib.sha256(backed.read_bytes()).hexdigest()

    doctor = runner.invoke(app, ["doctor", "--json"], env=env)
    assert '"storage"' in doctor.output and "writable (s3://" in doctor.output
    missing = {**env, "REELWATCH_STORAGE_URL": "s3://no-such-bucket-anywhere/site"}
    broken = runner.invoke(app, ["doctor"], env={**missing, "COLUMNS": "300"})
    assert broken.exit_code == 1
    assert "bucket does not exist" in " ".join(broken.output.split())


def test_an_upload_to_a_bucket_that_is_gone_is_refused_with_503_and_leaves_nothing(
    s3: MotoServer, tmp_path: Path
) -> None:
    instance = LiveInstance(bucket_settings(tmp_path, "no-such-bucket-y"), workers=0).start()
    try:
        client = instance.client()
        for size in (1000, 12 * 2**20):  # one PUT; a multipart upload
            answer = client.post("/api/v1/videos", files={"file": ("a.mp4", b"x" * size)})
            assert answer.status_code == 503, answer.text
            error = answer.json()["error"]
            assert error["code"] == "storage_unavailable"
            assert "no-such-bucket" not in error["message"], "keys and buckets stay in the log"
            assert answer.headers["retry-after"]
        assert client.get("/api/v1/videos").json()["videos"] == []
    finally:
        instance.stop()
