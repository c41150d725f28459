"""``reelwatch gc``: remove what no video needs, never what one does.

Garbage is (1) a video folder without a video row (a crash between storing an upload and
recording it), (2) temporary files left by a process that died mid-write, and (3) with
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

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch import sessions, throttle
from reelwatch.database import Database
from reelwatch.db.models import User, Video
from reelwatch.storage import MediaStore
from reelwatch.storage.local import MANIFEST
from reelwatch.videos import service
from reelwatch.videos.status import VideoStatus

GRACE = timedelta(hours=1)
NO_ROW = "no video row (stored, never recorded)"
UNRECORDED = "an upload whose video row is missing (`reelwatch recover` re-creates it)"
TEMPORARY_PATTERNS = (".*.tmp", ".ping-*", ".ready-*")
FINISHED = (VideoStatus.READY, VideoStatus.FAILED)


@dataclass(frozen=True)
class Garbage:
    path: Path
    reason: str
    size_bytes: int
    video_id: str | None = None  # an expired video: deleted through its rows


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
    found += _temporary_files(store, now)
    reason = f"finished over {retention_days} days ago"
    for video_id in expired:
        folder = store.video_dir(video_id)
        found.append(Garbage(folder, reason, _size(folder), video_id))
    return found


def collect(db: Database, store: MediaStore, garbage: list[Garbage]) -> int:
    """Remove ``garbage`` and the abandoned partial uploads; returns the bytes freed."""
    for item in garbage:
        if item.video_id is not None:
            _delete_video(db, store, item.video_id)
        elif item.path.is_dir():
            shutil.rmtree(item.path, ignore_errors=True)
        else:
            item.path.unlink(missing_ok=True)
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
        Garbage(folder, f"{UNRECORDED}; kept until {_kept_until(folder, retention)}", _size(folder))
        for folder in unknown_folders(store, known)
        if has_manifest(folder) and not settled(folder / MANIFEST, now, retention)
    ]


def unknown_folders(store: MediaStore, known: set[str]) -> list[Path]:
    """The video folders that no row in ``known`` points to."""
    folders = store.videos.iterdir() if store.videos.is_dir() else iter(())
    return sorted(f for f in folders if f.is_dir() and f.name not in known)


def has_manifest(folder: Path) -> bool:
    """An original with its upload manifest: a row may have been committed for it."""
    return (folder / "original").is_file() and (folder / MANIFEST).is_file()


def _orphan_folders(
    store: MediaStore, known: set[str], now: datetime, orphan_retention_days: int
) -> list[Garbage]:
    return [
        Garbage(folder, reason, _size(folder))
        for folder in unknown_folders(store, known)
        if (reason := _why_collected(folder, now, orphan_retention_days))
    ]


def _why_collected(folder: Path, now: datetime, orphan_retention_days: int) -> str | None:
    if not has_manifest(folder):
        return NO_ROW if settled(folder, now) else None
    if settled(folder / MANIFEST, now, timedelta(days=orphan_retention_days)):
        return (
            f"an upload whose video row is missing, not recovered in {orphan_retention_days} days"
        )
    return None


def _temporary_files(store: MediaStore, now: datetime) -> list[Garbage]:
    """Files, and the HLS variant folders, of writes that were cut short."""
    videos = [p for p in store.videos.glob("*") if p.is_dir()]
    folders = [store.incoming, *videos, *(p / "hls" for p in videos if (p / "hls").is_dir())]
    return [
        Garbage(path, "temporary file of an interrupted write", _size(path))
        for folder in folders
        for pattern in TEMPORARY_PATTERNS
        for path in folder.glob(pattern)
        if settled(path, now)
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


def settled(path: Path, now: datetime, age: timedelta = GRACE) -> bool:
    """Untouched for ``age`` (by default ``GRACE``: no process is still writing it)."""
    return _modified(path) < now - age


def _kept_until(folder: Path, retention: timedelta) -> str:
    return f"{_modified(folder / MANIFEST) + retention:%Y-%m-%d %H:%M} UTC"


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
