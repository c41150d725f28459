"""``reelwatch recover``: record again the uploads whose video row was lost.

An asynchronous failover, or a restore of an older backup, can lose the row of an
upload that got its 201 while its original stays in the media store. Its folder's
upload manifest (``upload.json``) says who uploaded what, so the row is re-created from
it (queued, no attempts) and its workflow started as an upload's is: the video is
processed and its owner mailed the outcome as if nothing had happened. The video keeps
its id (the folder's), so running it again re-creates nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reelwatch.database import Database, utcnow
from reelwatch.db.models import User, Video, Workflow
from reelwatch.engine import queue
from reelwatch.operations.gc import settled, unknown_folders
from reelwatch.storage import MANIFEST, ORIGINAL, MediaStore
from reelwatch.storage.base import checked_video_id
from reelwatch.videos.manifest import ManifestError, UploadManifest, read_manifest
from reelwatch.videos.service import record_upload

# A manifest younger than this may belong to an upload whose row is being committed
# right now: recording it too would make that upload fail (and remove its files).
SETTLE = timedelta(minutes=5)


# What was done with a video.
RECOVERED = "recovered"
WOULD_RECOVER = "would be recovered"
ALREADY_RECORDED = "already recorded"
NOT_RECOVERED = "not recovered"
OUTCOMES = (RECOVERED, WOULD_RECOVER, ALREADY_RECORDED, NOT_RECOVERED)  # the summary's order


@dataclass(frozen=True)
class Recovery:
    video_id: str
    owner: str  # the e-mail of its manifest or row, or "?" when neither can be read
    filename: str
    done: str  # one of the above
    detail: str = ""  # why not, or what next

    @property
    def ok(self) -> bool:
        return self.done != NOT_RECOVERED


def candidates(db: Database, store: MediaStore) -> list[str]:
    """The ids of the folders holding an original and its manifest but no row."""
    with db.read() as session:
        known = set(session.scalars(select(Video.id)))
    return [folder.video_id for folder in unknown_folders(store, known) if folder.has_manifest]


def recover(db: Database, store: MediaStore, video_id: str, *, dry_run: bool) -> Recovery:
    """Re-create ``video_id``'s row from its manifest and start its workflow."""
    try:
        checked_video_id(video_id)
    except ValueError:
        return Recovery(video_id, "?", "?", NOT_RECOVERED, "not a video id")
    with db.read() as session:
        recorded = session.execute(
            select(User.email, Video.filename).join(User).where(Video.id == video_id)
        ).first()
    if recorded is not None:
        return Recovery(video_id, recorded.email, recorded.filename, ALREADY_RECORDED)
    if store.video_folder(video_id) is None:
        return Recovery(video_id, "?", "?", NOT_RECOVERED, "no such folder in the media store")
    try:
        manifest = read_manifest(store, video_id)
    except ManifestError as exc:
        return Recovery(video_id, "?", "?", NOT_RECOVERED, str(exc))
    problem = _problem_with_original(store, manifest)
    if problem is not None:
        return _result(manifest, NOT_RECOVERED, problem)
    with db.read() as session:
        owner = _owner(session, manifest)
    if owner is None:
        missing = f"its owner (user {manifest.user_id}) is not a user any more: skipped"
        return _result(manifest, NOT_RECOVERED, missing)
    if dry_run:
        return _result(manifest, WOULD_RECOVER, "dry run")
    return _record(db, manifest.model_copy(update={"user_id": owner}))


def _problem_with_original(store: MediaStore, manifest: UploadManifest) -> str | None:
    folder = store.video_folder(manifest.video_id)
    original = folder.file(ORIGINAL) if folder else None
    written = folder.file(MANIFEST) if folder else None
    if folder is None or original is None:
        return "no original in its folder"
    if written is None or not settled(written.modified, utcnow(), SETTLE):
        return "uploaded minutes ago, maybe being recorded right now: run it again later"
    if (
        original.size_bytes != manifest.size_bytes
        or store.sha256(manifest.video_id, ORIGINAL) != manifest.sha256
    ):
        return "the original does not match the checksum taken at upload"
    return None


def _owner(session: Session, manifest: UploadManifest) -> int | None:
    """The owner's user id: by id while it still has the manifest's e-mail (e-mails
    never change; an id may have been given to someone else), else by e-mail."""
    by_id = session.get(User, manifest.user_id)
    if by_id is not None and by_id.email == manifest.email:
        return by_id.id
    return session.scalar(select(User.id).where(User.email == manifest.email))


def _record(db: Database, manifest: UploadManifest) -> Recovery:
    try:
        with db.write() as session:
            if session.get(Video, manifest.video_id) is not None:  # another recover
                return _result(manifest, ALREADY_RECORDED)
            video = record_upload(session, manifest, now=utcnow())
            workflow = session.get(Workflow, video.workflow_id)
            assert workflow is not None  # just started, in this transaction
            uploaded = manifest.created_at.isoformat() + "Z"
            queue.record_event(session, "video_recovered", workflow, data={"uploaded_at": uploaded})
    except IntegrityError:  # recorded by another recover meanwhile
        return _result(manifest, ALREADY_RECORDED)
    return _result(manifest, RECOVERED, "queued for processing")


def _result(manifest: UploadManifest, done: str, detail: str = "") -> Recovery:
    return Recovery(manifest.video_id, manifest.email, manifest.filename, done, detail)
