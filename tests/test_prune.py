"""The application's pruning duties on SQLite and PostgreSQL: leftover probe videos go
with their files and timelines; a user's video, its timeline and its messages stay; the
delivered messages of a deleted video go after the retention."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from reelwatch.accounts import create_user
from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Event, OutboxMessage, User, Video
from reelwatch.notify import outbox
from reelwatch.operations.prune import OutboxPruner, ProbeVideoPruner, maintenance_duties
from reelwatch.storage import LocalStore
from reelwatch.videos import service
from reelwatch.videos.pipeline import register_workflows

LATER = timedelta(hours=25)


def upload(db: Database, store: LocalStore, email: str) -> str:
    with db.read() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
    incoming = store.open_incoming()
    incoming.write(b"not really a video", limit_bytes=1024)
    return service.accept_upload(db, store, user, incoming, filename="v.mp4", title=None).id


def message(db: Database, key: str, video_id: str | None) -> None:
    with db.write() as session:
        outbox.enqueue(session, outbox.Message(key, "email", "a@b.c", "s", "t", video_id=video_id))
        delivered = update(OutboxMessage).where(OutboxMessage.key == key)
        session.execute(delivered.values(state=outbox.SENT, sent_at=utcnow()))


def scalar_count(db: Database, query: object) -> int:
    with db.read() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def test_probe_videos_and_dead_videos_messages_go_and_live_videos_stay(
    settings: Settings,
) -> None:
    upgrade_database(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    store = LocalStore(settings.media_root)
    register_workflows(settings, store)
    with db.write() as session:
        create_user(session, settings.probe_email)
        create_user(session, "ana@example.com")
    probe_video = upload(db, store, settings.probe_email)
    kept, gone = upload(db, store, "ana@example.com"), upload(db, store, "ana@example.com")
    for video_id in (kept, gone):
        message(db, f"email:video:{video_id}:run1:outcome", video_id)
    message(db, "email:status:back:1", None)
    with db.read() as session:
        ana = session.scalars(select(User).where(User.email == "ana@example.com")).one()
    service.delete_video(db, store, ana, gone)
    timeline = select(func.count()).where(Event.subject_id == kept)
    kept_events = scalar_count(db, timeline)
    probes = ProbeVideoPruner(db, store, settings.probe_email, timedelta(hours=24))
    messages = OutboxPruner(db, timedelta(hours=24))

    assert probes.run(utcnow()) == 0 and messages.run(utcnow()) == 0, "too young yet"
    assert probes.run(utcnow() + LATER) == 1
    assert not store.video_dir(probe_video).exists(), "its files went with its rows"
    assert scalar_count(db, select(func.count()).where(Event.subject_id == probe_video)) == 0
    assert messages.run(utcnow() + LATER) == 1
    with db.read() as session:
        assert set(session.scalars(select(OutboxMessage.video_id))) == {kept, None}
        assert set(session.scalars(select(Video.id))) == {kept}
    assert store.video_dir(kept).exists()
    assert scalar_count(db, timeline) == kept_events > 0, "a live video's timeline stays"
    db.dispose()


def test_a_retention_of_zero_turns_the_pruning_off(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    kept = settings.model_copy(update={"prune_finished_hours": 0})
    names = [duty.name for duty in maintenance_duties(db, kept)]
    assert names == ["lease rescuer", "pruner"]
    assert kept.prune_retention is None and settings.prune_retention == timedelta(hours=24)
    db.dispose()
