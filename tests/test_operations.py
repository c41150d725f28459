"""Operator commands on real data: gc, backup and restore (SQLite and PostgreSQL), doctor."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from instance import LiveInstance, free_port, upload, wait_for_outcome
from pg import PostgresCluster
from reelwatch.cli.main import app
from reelwatch.config import load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Video

runner = CliRunner()


def make_old(path: Path, hours: float = 2) -> Path:
    moment = time.time() - hours * 3600
    os.utime(path, (moment, moment))
    return path


def ready_videos(instance: LiveInstance, sample: Path, count: int) -> list[str]:
    client = instance.client()
    ids = [upload(client, sample)["id"] for _ in range(count)]
    for video_id in ids:
        assert wait_for_outcome(client, video_id)["status"] == "ready"
    return ids


def env_for(home: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {"REELWATCH_HOME": str(home), "COLUMNS": "200", **extra}
    if database_url:
        env["REELWATCH_DATABASE_URL"] = database_url
    return env


def test_gc_removes_orphans_and_debris_but_never_what_a_video_needs(
    tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    settings = load_settings(home=home, bind=f"127.0.0.1:{free_port()}")
    instance = LiveInstance(settings, workers=1).start()
    try:
        [kept, expiring] = ready_videos(instance, good_samples["h264"], 2)
    finally:
        instance.stop()
    videos = settings.media_root / "videos"
    orphan = videos / ("a" * 32)
    orphan.mkdir()
    (orphan / "original").write_bytes(b"x" * 1000)
    make_old(orphan)
    fresh = videos / ("b" * 32)  # maybe an upload being recorded right now
    fresh.mkdir()
    debris = videos / kept / ".480p.mp4.0a1b2c3d.tmp"  # a transcode killed mid-write
    debris.write_bytes(b"partial")
    make_old(debris)
    half_variant = videos / kept / "hls" / ".240p.0a1b2c3d.tmp"  # killed while cutting HLS
    half_variant.mkdir()
    (half_variant / "seg-00001.m4s").write_bytes(b"partial")
    make_old(half_variant)
    variant = next(p for p in (videos / kept / "hls").iterdir() if p.is_dir())
    segment_debris = variant / "seg-00009.m4s.tmp"  # ffmpeg's, killed while segmenting
    segment_debris.write_bytes(b"partial")
    make_old(segment_debris)
    variant_before = sorted(p.name for p in variant.iterdir())
    before = sorted(p.name for p in (videos / kept).iterdir())
    hls_before = sorted(p.name for p in (videos / kept / "hls").iterdir())

    env = env_for(home)
    dry = runner.invoke(app, ["gc", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "4 items would be removed" in dry.output and orphan.exists() and debris.exists()

    done = runner.invoke(app, ["gc"], env=env)
    assert done.exit_code == 0 and "removed 4 items" in done.output
    assert not orphan.exists() and not debris.exists() and fresh.exists()
    assert not half_variant.exists()
    assert sorted(p.name for p in variant.iterdir()) == [
        n for n in variant_before if n != segment_debris.name
    ]
    assert sorted(p.name for p in (videos / kept).iterdir()) == [
        n for n in before if n != debris.name
    ]
    assert sorted(p.name for p in (videos / kept / "hls").iterdir()) == [
        n for n in hls_before if n != half_variant.name
    ]

    db = Database(settings.resolved_database_url)
    with db.write() as session:
        session.execute(
            update(Video)
            .where(Video.id == expiring)
            .values(updated_at=utcnow() - timedelta(days=10))
        )
    retention = runner.invoke(app, ["gc"], env={**env, "REELWATCH_RETENTION_DAYS": "7"})
    assert "finished over 7 days ago" in retention.output
    with db.read() as session:
        assert list(session.scalars(select(Video.id))) == [kept]
    db.dispose()
    assert not (videos / expiring).exists() and (videos / kept / "original").exists()


def test_backup_and_restore_on_sqlite_checks_every_original(
    tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    settings = load_settings(home=home, bind=f"127.0.0.1:{free_port()}")
    instance = LiveInstance(settings, workers=1).start()
    try:
        ids = ready_videos(instance, good_samples["h264"], 2)
        saved = runner.invoke(app, ["backup", str(tmp_path / "backup")], env=env_for(home))
    finally:
        instance.stop()
    assert saved.exit_code == 0, saved.output
    assert "backed up 2 videos" in saved.output

    elsewhere = tmp_path / "new-home"
    restored = runner.invoke(app, ["restore", str(tmp_path / "backup")], env=env_for(elsewhere))
    assert restored.exit_code == 0, restored.output
    assert "every original matches the checksum taken at upload" in restored.output
    for video_id in ids:
        assert (elsewhere / "media" / "videos" / video_id / "original").exists()

    again = runner.invoke(app, ["restore", str(tmp_path / "backup")], env=env_for(elsewhere))
    assert again.exit_code == 1 and "--force" in again.output, "no silent overwrite"
    original = tmp_path / "backup" / "media" / "videos" / ids[0] / "original"
    original.write_bytes(b"bit rot")
    forced = runner.invoke(
        app, ["restore", str(tmp_path / "backup"), "--force"], env=env_for(elsewhere)
    )
    assert (
        forced.exit_code == 1 and f"does not match its upload checksum: {ids[0]}" in forced.output
    )


def test_backup_and_restore_on_postgresql(
    tmp_path: Path, pg_cluster: PostgresCluster, good_samples: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    source_url = pg_cluster.create_database()
    settings = load_settings(home=home, bind=f"127.0.0.1:{free_port()}", database_url=source_url)
    instance = LiveInstance(settings, workers=1).start()
    try:
        ids = ready_videos(instance, good_samples["h264"], 1)
    finally:
        instance.stop()
    saved = runner.invoke(app, ["backup", str(tmp_path / "backup")], env=env_for(home, source_url))
    assert saved.exit_code == 0, saved.output
    target_url = pg_cluster.create_database()
    restored = runner.invoke(
        app, ["restore", str(tmp_path / "backup")], env=env_for(tmp_path / "new", target_url)
    )
    assert restored.exit_code == 0, restored.output
    db = Database(target_url)
    with db.read() as session:
        assert list(session.scalars(select(Video.id))) == ids
    db.dispose()
    on_sqlite = runner.invoke(
        app, ["restore", str(tmp_path / "backup")], env=env_for(tmp_path / "x")
    )
    assert on_sqlite.exit_code == 1 and "this backup is of PostgreSQL" in on_sqlite.output


def test_doctor_says_what_is_wrong_and_what_to_do(tmp_path: Path) -> None:
    home = tmp_path / "home"
    upgrade_database(load_settings(home=home).resolved_database_url)
    healthy = runner.invoke(app, ["doctor"], env=env_for(home))
    assert healthy.exit_code == 0, healthy.output
    assert "at revision" in healthy.output and "nothing to collect" in healthy.output
    broken = runner.invoke(app, ["doctor"], env=env_for(home, REELWATCH_ALERT_URLS="bogus://x"))
    assert broken.exit_code == 1
    assert (
        "not Apprise URLs: bogus://" in broken.output
        and "fix REELWATCH_ALERT_URLS" in broken.output
    )


@pytest.mark.parametrize("target", ["not-empty"])
def test_backup_refuses_a_folder_with_files(tmp_path: Path, target: str) -> None:
    home = tmp_path / "home"
    upgrade_database(load_settings(home=home).resolved_database_url)
    (tmp_path / target).mkdir()
    (tmp_path / target / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["backup", str(tmp_path / target)], env=env_for(home))
    assert result.exit_code == 1 and "is not empty" in result.output
