"""An upload whose row the database lost (an asynchronous failover, an older backup
restored) is kept by gc, reported by doctor and re-created by ``reelwatch recover``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from instance import LiveInstance, free_port, upload, wait_for_outcome
from reelwatch.accounts import create_user
from reelwatch.cli.main import app
from reelwatch.config import Settings, load_settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Event, OutboxMessage, User, Video, Workflow
from reelwatch.engine import queue
from reelwatch.storage import LocalStore
from reelwatch.storage.local import sha256_of
from reelwatch.videos import service
from reelwatch.videos.pipeline import register_video_workflow
from samples import make_video

runner = CliRunner()
DAY = 24.0


def age(folder: Path, hours: float) -> None:
    """Make a video folder and everything in it look ``hours`` old."""
    moment = time.time() - hours * 3600
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (moment, moment))


def accept(db: Database, store: LocalStore, email: str, content: bytes) -> Video:
    with db.read() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
    incoming = store.open_incoming()
    incoming.write(content, limit_bytes=1 << 20)
    return service.accept_upload(db, store, user, incoming, filename="clip.mp4", title="Holiday")


def lose_row(db: Database, video_id: str) -> None:
    """What a lost commit leaves: no video row, workflow, tasks nor events; files stay."""
    with db.write() as session:
        video = session.get(Video, video_id)
        assert video is not None
        workflow = session.get(Workflow, video.workflow_id)
        session.delete(video)
        session.flush()
        session.delete(workflow)


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        "REELWATCH_HOME": str(settings.home),
        "REELWATCH_DATABASE_URL": settings.resolved_database_url,
        "COLUMNS": "250",
    }
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_a_lost_row_is_kept_reported_and_recovered_once(tmp_path: Path, database_url: str) -> None:
    settings = load_settings(home=tmp_path / "home", database_url=database_url)
    upgrade_database(database_url)
    db = Database(database_url)
    store = LocalStore(settings.media_root)
    store.ensure_layout()
    register_video_workflow(settings, store)
    with db.write() as session:
        ana = create_user(session, "ana@example.com")
        create_user(session, "bob@example.com")
    video = accept(db, store, "ana@example.com", b"the original")
    by_email = accept(db, store, "ana@example.com", b"ana again").id
    orphaned = accept(db, store, "bob@example.com", b"bob's").id

    manifest = json.loads(store.manifest_path(video.id).read_text())
    assert manifest == {
        "format": 1,
        "video_id": video.id,
        "user_id": ana.id,
        "email": "ana@example.com",
        "filename": "clip.mp4",
        "title": "Holiday",
        "size_bytes": len(b"the original"),
        "sha256": sha256_of(store.original_path(video.id)),
        "created_at": video.created_at.isoformat() + "Z",
    }
    assert manifest["sha256"] == video.sha256

    for video_id in (video.id, by_email, orphaned):
        lose_row(db, video_id)
    with db.write() as session:  # bob's account went too: his upload has no owner
        session.delete(session.scalars(select(User).where(User.email == "bob@example.com")).one())
    path = store.manifest_path(by_email)  # ana's id was reassigned: found by e-mail
    path.write_text(json.dumps({**json.loads(path.read_text()), "user_id": 9999}))
    no_manifest = store.video_dir("c" * 32)  # a crash before the 201: today's rule
    no_manifest.mkdir()
    (no_manifest / "original").write_bytes(b"never answered")
    folders = [store.video_dir(v) for v in (video.id, by_email, orphaned)]

    code, fresh = cli(settings, "gc")  # within the hour's grace
    assert code == 0 and fresh.count("kept until") == 3 and "removed 0 items" in fresh
    for folder in [*folders, no_manifest]:
        age(folder, hours=2)
    code, dry = cli(settings, "gc", "--dry-run")
    assert code == 0, dry
    assert dry.count("reelwatch recover` re-creates it") == 3 and "1 items would be removed" in dry
    code, done = cli(settings, "gc")
    assert code == 0 and "removed 1 items" in done and "no video row" in done
    assert all(folder.is_dir() for folder in folders) and not no_manifest.exists()

    code, doctor = cli(settings, "doctor")
    assert "3 stored uploads have no video row" in doctor and "`reelwatch recover`" in doctor

    code, listed = cli(settings, "recover", "--dry-run")
    assert code == 1, "bob's upload cannot be recovered"
    assert listed.count("would be recovered: dry run") == 2 and "clip.mp4" in listed
    assert f"{orphaned}  bob@example.com  clip.mp4  not recovered" in listed
    with db.read() as session:
        assert session.scalars(select(Video)).all() == []

    code, recovered = cli(settings, "recover")
    assert code == 1 and "2 recovered, 1 not recovered" in recovered, recovered
    assert f"{video.id}  ana@example.com  clip.mp4  recovered" in recovered
    with db.read() as session:
        rows = {v.id: v for v in session.scalars(select(Video))}
        kinds = list(session.scalars(select(Event.kind).where(Event.subject_id == video.id)))
    assert set(rows) == {video.id, by_email}
    again = rows[video.id]
    assert (again.user_id, again.status, again.attempts) == (ana.id, "queued", 0)
    assert (again.title, again.sha256) == (video.title, video.sha256)
    assert again.created_at == video.created_at, "the upload's time, from the manifest"
    assert rows[by_email].user_id == ana.id
    assert kinds[0] == "workflow_started" and "video_recovered" in kinds
    claimed = [queue.claim_next_task(db, "worker-1", lease_s=30) for _ in range(2)]
    assert {task.subject_id for task in claimed if task} == {video.id, by_email}

    code, twice = cli(settings, "recover")
    assert code == 1 and "1 not recovered" in twice and "recovered," not in twice
    code, named = cli(settings, "recover", video.id)
    assert code == 0 and "already recorded" in named
    with db.read() as session:
        assert session.scalar(select(Workflow.id).where(Workflow.subject_id == video.id))
        assert len(session.scalars(select(Workflow)).all()) == 2

    age(store.video_dir(orphaned), hours=8 * DAY)  # past the 7 days' retention
    code, expired = cli(settings, "gc")
    assert code == 0 and "not recovered in 7 days" in expired and "removed 1 items" in expired
    assert not store.video_dir(orphaned).exists()
    assert store.video_dir(video.id).is_dir() and store.video_dir(by_email).is_dir()
    db.dispose()


def test_a_recovered_video_is_processed_and_its_owner_mailed(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}", retry_backoff_scale=0.0
    )
    clip = make_video(tmp_path / "clip.mp4", duration_s=0.5, width=160, height=120, audio=False)
    instance = LiveInstance(settings, workers=0).start()
    try:
        client = instance.client()
        video_id = upload(client, clip)["id"]  # the 201
        lose_row(instance.db, video_id)
        age(LocalStore(settings.media_root).video_dir(video_id), hours=1)
        code, output = cli(settings, "recover")
        assert code == 0 and "1 recovered" in output, output
        instance.add_worker()
        assert wait_for_outcome(client, video_id)["status"] == "ready"
        with instance.db.read() as session:
            mail = session.scalars(
                select(OutboxMessage).where(OutboxMessage.video_id == video_id)
            ).one()
        assert mail.recipient == "alice@example.com" and "ready" in mail.subject
    finally:
        instance.stop()
