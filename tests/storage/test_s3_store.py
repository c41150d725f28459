"""The S3 store against a real S3 endpoint (moto's server, a subprocess on loopback)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reelwatch.config import ConfigError, load_settings, parse_bucket_url
from reelwatch.storage import UploadTooLarge, open_store
from reelwatch.storage.s3 import S3Store
from reelwatch.storage.scratch import Scratch
from s3server import MotoServer, keys, localhost_subdomains, unfinished_uploads

MIB = 1 << 20


def make_store(tmp_path: Path, bucket: str, addressing: str = "path") -> S3Store:
    return S3Store(
        parse_bucket_url(f"s3://{bucket}/site/one"),
        tmp_path / "scratch",
        addressing=addressing,
        part_bytes=5 * MIB,
    )


def stream(store: S3Store, data: bytes, chunk: int = 256 * 1024) -> tuple[object, int]:
    """Upload ``data`` as the API does; returns the incoming and the most it buffered."""
    incoming = store.open_incoming()
    most = 0
    for start in range(0, len(data), chunk):
        incoming.write(data[start : start + chunk], limit_bytes=100 * MIB)
        most = max(most, len(incoming._buffer))
        if incoming.wants_flush():
            incoming.flush()
    return incoming, most


@pytest.mark.parametrize("addressing", ["path", "virtual"])
def test_an_upload_streams_in_parts_and_appears_whole_after_its_manifest(
    s3: MotoServer, bucket: str, tmp_path: Path, addressing: str
) -> None:
    data = os.urandom(12 * MIB + 12345)
    with localhost_subdomains():
        store = make_store(tmp_path, bucket, addressing)
        incoming, most = stream(store, data)
        assert most <= 5 * MIB + 256 * 1024, "memory: one part and one chunk at most"
        stored = incoming.finish()  # type: ignore[attr-defined]
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        video_id = incoming.video_id  # type: ignore[attr-defined]
        prefix = f"site/one/videos/{video_id}/"
        assert keys(s3.client(), bucket, prefix) == {}, "nothing visible before it is kept"
        store.keep_original(incoming, video_id, b'{"manifest": 1}')  # type: ignore[arg-type]
        assert keys(s3.client(), bucket, prefix) == {
            prefix + "original": len(data),
            prefix + "upload.json": 15,
        }
        assert store.sha256(video_id, "original") == stored.sha256
        assert unfinished_uploads(s3.client(), bucket) == []


def test_a_discarded_or_oversized_upload_leaves_nothing(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    store = make_store(tmp_path, bucket)
    incoming, _ = stream(store, os.urandom(11 * MIB))
    assert unfinished_uploads(s3.client(), bucket), "parts were sent"
    incoming.discard()  # type: ignore[attr-defined]
    assert unfinished_uploads(s3.client(), bucket) == []

    incoming = store.open_incoming()
    incoming.write(os.urandom(6 * MIB), limit_bytes=20 * MIB)
    incoming.flush()
    with pytest.raises(UploadTooLarge):
        incoming.write(os.urandom(15 * MIB), limit_bytes=20 * MIB)
    assert unfinished_uploads(s3.client(), bucket) == []
    assert keys(s3.client(), bucket) == {}


def test_publish_takes_any_relative_path_skips_what_is_there_and_refuses_escapes(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    store = make_store(tmp_path, bucket)
    video_id = "a" * 32
    folder = tmp_path / "work"
    files = ["480p.mp4", "thumbnail.jpg", "hls/master.m3u8", "hls/v0/init.mp4", "hls/v0/s1.m4s"]
    for relative in files:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(relative.encode() * 100)
    store.publish(video_id, folder, files)
    prefix = f"site/one/videos/{video_id}/"
    assert set(keys(s3.client(), bucket, prefix)) == {prefix + f for f in files}
    head = s3.client().head_object(Bucket=bucket, Key=prefix + "hls/master.m3u8")
    assert head["ContentType"] == "application/vnd.apple.mpegurl"

    # A retry publishes only what is missing (same size: already there, whole), but a
    # playlist is rewritten in place as its variant grows: it goes up whatever its size.
    (folder / "480p.mp4").write_bytes(b"X" * len(b"480p.mp4" * 100))
    (folder / "hls/master.m3u8").write_bytes(b"Y" * len(b"hls/master.m3u8" * 100))
    store.publish(video_id, folder, files)
    assert store.read_bytes(video_id, "480p.mp4") == b"480p.mp4" * 100
    assert (
        store.read_bytes(video_id, "hls/master.m3u8") == (folder / "hls/master.m3u8").read_bytes()
    )

    for hostile in ["../escape", "hls/../../x", ".hidden", "/abs", "a//b", "", "a/./b"]:
        with pytest.raises(ValueError):
            store.publish(video_id, folder, [hostile])
    for hostile_id in ["../x", "a/b", "", "a" * 65, "ä"]:
        with pytest.raises(ValueError):
            store.sizes(hostile_id, ["480p.mp4"])

    store.delete_video(video_id)
    assert keys(s3.client(), bucket, prefix) == {}


def test_the_workspace_fetches_the_original_once_and_lets_go_of_it(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    store = make_store(tmp_path, bucket)
    incoming, _ = stream(store, b"original bytes")
    incoming.finish()  # type: ignore[attr-defined]
    video_id = incoming.video_id  # type: ignore[attr-defined]
    store.keep_original(incoming, video_id, b"{}")  # type: ignore[arg-type]
    with store.workspace(video_id) as folder:
        assert (folder / "original").read_bytes() == b"original bytes"
        with store.workspace(video_id) as again:  # a second task of the same video
            assert again == folder
    assert (folder / "original").exists(), "kept for the video's next task"
    assert store.scratch.evict_idle(idle_s=3600) == []
    assert store.scratch.evict_idle(idle_s=0) == [video_id]
    assert not folder.exists()

    with store.workspace(video_id) as folder:
        store.release(video_id)  # finalize, while the task still runs
        assert folder.exists()
    assert not folder.exists(), "gone when the video is done"

    with pytest.raises(FileNotFoundError), store.workspace("b" * 32):
        pass


def test_the_scratch_of_a_killed_process_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    code = (
        "import sys, os, signal; from pathlib import Path;"
        "from reelwatch.storage.scratch import Scratch;"
        "s = Scratch(Path(sys.argv[1]));"
        "f = s._process_folder(); (f / 'x').write_bytes(b'x');"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", code, str(root)], check=False)
    alive = Scratch(root)
    alive._process_folder()
    alive.remove_dead_processes()
    assert [p.name for p in root.iterdir()] == [alive._mine.name]  # type: ignore[union-attr]


def test_the_checks_say_in_words_what_is_wrong(
    s3: MotoServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_store(tmp_path, bucket).describe_problem() is None
    missing = make_store(tmp_path, "no-such-bucket-here").describe_problem()
    assert missing is not None and "bucket does not exist" in missing
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    away = make_store(tmp_path, bucket).describe_problem()
    assert away is not None and "does not answer" in away and "AWS_ENDPOINT_URL" in away


@pytest.mark.parametrize(
    "url",
    [
        "http://bucket/x",
        "s3://",
        "s3://UPPER/x",
        "s3://ab/x",
        "s3://bucket/../etc",
        "s3://bucket/a/../b",
        "s3://bucket/a b",
        "s3://user@bucket/x",
        "s3://bucket:9000/x",
        "s3://bucket/x?versionId=1",
        "s3://127.0.0.1/x",
    ],
)
def test_a_bad_storage_url_stops_the_start_with_one_line(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^REELWATCH_STORAGE_URL: "):
        load_settings(storage_url=url)


def test_the_storage_url_picks_the_store(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, storage_url="s3://media-bucket/site/")
    assert settings.bucket is not None and str(settings.bucket) == "s3://media-bucket/site"
    store = open_store(settings)
    assert isinstance(store, S3Store) and store.description == "s3://media-bucket/site"
    assert open_store(load_settings(home=tmp_path)).disk_path() == (tmp_path / "media").resolve()


def test_keys_this_store_did_not_write_are_left_out_of_its_listings(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    store = make_store(tmp_path, bucket)
    video_id = "e" * 32
    for relative in ["original", "../../escape", ".hidden", "a//b", "x/../../y"]:
        key = f"site/one/videos/{video_id}/{relative}"
        s3.client().put_object(Bucket=bucket, Key=key, Body=b"x")
    [folder] = store.video_folders()
    assert [f.relative for f in folder.files] == ["original"]
    store.export_videos(tmp_path / "backup")
    assert [p.name for p in (tmp_path / "backup").rglob("*") if p.is_file()] == ["original"]
