"""``reelwatch gc``: remove what no video needs, never what one does.

Garbage is (1) a video folder without a video row (a crash between storing an upload and
recording it), (2) temporary files left by a process that died mid-write (in a bucket:
multipart uploads unfinished for a day), and (3) with
``REELWATCH_RETENTION_DAYS`` set, finished videos older than that: their rows first,
then their files, as a user's delete does. Anything younger than ``GRACE`` is left
alone: it may belong to work in progress. Partial uploads that no process is writing
are removed too (servers also do that when they start). Rows that only expire (web
sessions, throttle counters) go too: ``purge_expired_rows``.

A folder without a row that holds an original and its upload manifest is different: its
row may have been lost after the 201 (an asynchronous failover, an older backup
restored). It is kept ``orphan_retention_days`` for ``reelwatch recover``, and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch import sessions, throttle
from reelwatch.database import Database
from reelwatch.db.models import User, Video
from reelwatch.storage import MANIFEST, MediaStore
from reelwatch.storage.base import Debris, VideoFolder
from reelwatch.videos import service
from reelwatch.videos.status import VideoStatus

GRACE = timedelta(hours=1)
NO_ROW = "no video row (stored, never recorded)"
UNRECORDED = "an upload whose video row is missing (`reelwatch recover` re-creates it)"
FINISHED = (VideoStatus.READY, VideoStatus.FAILED)


@dataclass(frozen=True)
class Garbage:
    path: str  # for people: a path, or s3://bucket/key
    reason: str
    size_bytes: int
    video_id: str | None = None  # a folder: its files go (through its rows when it has some)
    expired: bool = False  # a finished video past the retention: deleted as a user would
    debris: Debris | None = None  # what an interrupted write left


def find_garbage(
    db: Database,
    store: MediaStore,
    *,
    now: datetime,
    retention_days: int,
    orphan_retention_days: int,
) -> list[Garbage]:
    with db.read() as session:
        known = set(session.scalars(select(Video.id)))
        expired = _expired(session, now, retention_days) if retention_days else []
    found = _orphan_folders(store, known, now, orphan_retention_days)
    found += _debris(store, now)
    reason = f"finished over {retention_days} days ago"
    for video_id in expired:
        folder = store.video_folder(video_id)
        where = folder.where if folder else video_id
        size = folder.size_bytes if folder else 0
        found.append(Garbage(where, reason, size, video_id, expired=True))
    return found


def collect(db: Database, store: MediaStore, garbage: list[Garbage]) -> int:
    """Remove ``garbage`` and the abandoned partial uploads; returns the bytes freed."""
    for item in garbage:
        if item.expired and item.video_id is not None:
            _delete_video(db, store, item.video_id)
        elif item.video_id is not None:
            store.delete_video(item.video_id)
        elif item.debris is not None:
            store.remove_debris(item.debris)
    store.remove_abandoned_uploads()
    return sum(item.size_bytes for item in garbage)


def purge_expired_rows(db: Database, now: datetime) -> int:
    """Delete expired or long-revoked web sessions and ended throttle windows (sign-ins
    and attempts delete them too, as they come); returns how many rows went."""
    with db.write() as session:
        return sessions.purge_expired(session, now) + throttle.purge_expired(session, now)


def find_unrecorded_uploads(
    db: Database, store: MediaStore, *, now: datetime, orphan_retention_days: int
) -> list[Garbage]:
    """The folders gc keeps although no row points to them: uploads whose row is
    missing, not yet past ``orphan_retention_days`` (``reelwatch recover`` records them)."""
    with db.read() as session:
        known = set(session.scalars(select(Video.id)))
    retention = timedelta(days=orphan_retention_days)
    return [
        Garbage(
            folder.where,
            f"{UNRECORDED}; kept until {_kept_until(folder, retention)}",
            folder.size_bytes,
        )
        for folder in unknown_folders(store, known)
        if folder.has_manifest and not settled(_manifest_time(folder), now, retention)
    ]


def unknown_folders(store: MediaStore, known: set[str]) -> list[VideoFolder]:
    """The video folders that no row in ``known`` points to."""
    return [folder for folder in store.video_folders() if folder.video_id not in known]


def _orphan_folders(
    store: MediaStore, known: set[str], now: datetime, orphan_retention_days: int
) -> list[Garbage]:
    return [
        Garbage(folder.where, reason, folder.size_bytes, folder.video_id)
        for folder in unknown_folders(store, known)
        if (reason := _why_collected(folder, now, orphan_retention_days))
    ]


def _why_collected(folder: VideoFolder, now: datetime, orphan_retention_days: int) -> str | None:
    if not folder.has_manifest:
        return NO_ROW if settled(folder.modified, now) else None
    if settled(_manifest_time(folder), now, timedelta(days=orphan_retention_days)):
        return (
            f"an upload whose video row is missing, not recovered in {orphan_retention_days} days"
        )
    return None


def _debris(store: MediaStore, now: datetime) -> list[Garbage]:
    return [
        Garbage(item.where, "temporary file of an interrupted write", item.size_bytes, debris=item)
        for item in store.debris()
        if settled(item.modified, now, item.grace)
    ]


def _expired(session: Session, now: datetime, retention_days: int) -> list[str]:
    query = select(Video.id).where(
        Video.status.in_(FINISHED), Video.updated_at < now - timedelta(days=retention_days)
    )
    return list(session.scalars(query))


def _delete_video(db: Database, store: MediaStore, video_id: str) -> None:
    with db.read() as session:
        video = session.get(Video, video_id)
        owner = session.get(User, video.user_id) if video else None
    if owner is not None:  # gone meanwhile: nothing to do
        service.delete_video(db, store, owner, video_id)


def settled(modified: datetime, now: datetime, age: timedelta = GRACE) -> bool:
    """Untouched for ``age`` (by default ``GRACE``: no process is still writing it)."""
    return modified < now - age


def _manifest_time(folder: VideoFolder) -> datetime:
    manifest = folder.file(MANIFEST)
    return manifest.modified if manifest else folder.modified


def _kept_until(folder: VideoFolder, retention: timedelta) -> str:
    return f"{_manifest_time(folder) + retention:%Y-%m-%d %H:%M} UTC"
