"""What can be done with videos, as plain functions the API and CLI call.

Accepting an upload is one transaction (video row, workflow, first tasks, event) after
the original and its manifest are already durable in the store; everything after that
is the engine's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Row, Select, bindparam, func, select, tuple_
from sqlalchemy.orm import Session, joinedload, selectinload

from reelwatch.database import Database, utcnow
from reelwatch.db.models import Event, Rendition, User, Video, Workflow
from reelwatch.engine import queue
from reelwatch.engine.spec import workflow_spec
from reelwatch.failures import retry_refusal
from reelwatch.inputs import clean_filename, clean_title
from reelwatch.storage import Incoming, MediaStore
from reelwatch.videos.manifest import UploadManifest
from reelwatch.videos.pipeline.workflow import VIDEO_WORKFLOW
from reelwatch.videos.status import VideoStatus

T = TypeVar("T", "Video", "VideoItem")


class VideoNotFound(LookupError):
    pass


class NotRetryable(Exception):
    pass


@dataclass(frozen=True)
class Page(Generic[T]):
    videos: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RenditionItem:
    name: str
    width: int
    height: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class VideoItem:
    """A video of a list page as plain values: the columns the API shows, no ORM object."""

    id: str
    status: str
    progress: float
    title: str
    filename: str
    size_bytes: int
    sha256: str
    duration_s: float | None
    width: int | None
    height: int | None
    attempts: int
    error_code: str | None
    error_message: str | None
    error_recoverable: bool | None
    next_retry_at: datetime | None
    has_thumbnail: bool
    streaming_rendition: str | None
    created_at: datetime
    updated_at: datetime
    renditions: list[RenditionItem] = field(default_factory=list)


_ITEM_COLUMNS = [Video.__table__.c[f.name] for f in fields(VideoItem) if f.name != "renditions"]
_RENDITION_COLUMNS = [Rendition.__table__.c[f.name] for f in fields(RenditionItem)]


def accept_upload(
    db: Database,
    store: MediaStore,
    user: User,
    incoming: Incoming,
    *,
    filename: str,
    title: str | None,
    hold_until: datetime | None = None,
) -> Video:
    """Keep a finished upload durably, then record it and start its workflow (held
    until ``hold_until``, during maintenance).

    Fair share: the workflow's priority is the number of the user's videos still
    unfinished, so a burst from one user interleaves with everyone else's uploads
    instead of queueing ahead of them."""
    filename = clean_filename(filename)
    title = clean_title(title, filename=filename)  # before anything is kept: may refuse
    stored = incoming.finish()
    now = utcnow()
    manifest = UploadManifest(
        video_id=incoming.video_id,
        user_id=user.id,
        email=user.email,
        filename=filename,
        title=title,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        created_at=now,
    )
    try:
        # Inside the try: a move that fails half way (its folder sync, say) must not
        # leave an original that no row points to.
        store.keep_original(incoming, manifest.video_id, manifest.to_bytes())
        with db.write() as session:
            video = record_upload(session, manifest, now=now, hold_until=hold_until)
    except BaseException:
        store.delete_video(manifest.video_id)  # no row, so no 201: the file must not linger
        raise
    return video


def record_upload(
    session: Session,
    manifest: UploadManifest,
    *,
    now: datetime,
    hold_until: datetime | None = None,
) -> Video:
    """Insert the row of an upload already kept in the store and start its workflow, in
    the caller's transaction: when it is accepted, and when ``reelwatch recover``
    records it again from its manifest."""
    video = Video(
        id=manifest.video_id,
        user_id=manifest.user_id,
        title=manifest.title,
        filename=manifest.filename,
        size_bytes=manifest.size_bytes,
        sha256=manifest.sha256,
        status=VideoStatus.QUEUED,
        progress=0.0,
        attempts=0,
        has_thumbnail=False,
        renditions=[],
        created_at=manifest.created_at,
        updated_at=now,
    )
    session.add(video)
    session.flush()
    origin = {
        "upload": {
            "filename": manifest.filename,
            "size_bytes": manifest.size_bytes,
            "sha256": manifest.sha256,
        }
    }
    workflow = queue.start_workflow(
        session,
        workflow_spec(VIDEO_WORKFLOW),
        subject_id=manifest.video_id,
        origin=origin,
        priority=_unfinished_videos(session, manifest.user_id),
        not_before=hold_until,
    )
    video.workflow_id = workflow.id
    return video


def _unfinished_videos(session: Session, user_id: int) -> int:
    unfinished = (VideoStatus.QUEUED, VideoStatus.PROCESSING, VideoStatus.RETRYING)
    query = select(func.count()).where(Video.user_id == user_id, Video.status.in_(unfinished))
    return int(session.scalar(query) or 0)


def get_video(session: Session, user: User, video_id: str) -> Video:
    """A video the user may see; another user's video is 'not found', not 'forbidden'."""
    query = select(Video).where(Video.id == video_id).options(selectinload(Video.renditions))
    if not user.is_admin:
        query = query.where(Video.user_id == user.id)
    video = session.scalar(query)
    if video is None:
        raise VideoNotFound(video_id)
    return video


class Viewer(Protocol):
    """Who reads: a ``User``, or anything else with its id and admin flag."""

    @property
    def id(self) -> int: ...

    @property
    def is_admin(self) -> bool: ...


def get_video_item(connection: Connection, viewer: Viewer, video_id: str) -> VideoItem:
    """``get_video`` as plain values, for the API's status read (the hottest request):
    one statement built once, the video joined to its renditions, no ORM objects."""
    query = _ANY_VIDEO if viewer.is_admin else _OWN_VIDEO
    items = _items(connection.execute(query, {"video_id": video_id, "user_id": viewer.id}))
    if not items:
        raise VideoNotFound(video_id)
    return items[0]


def _video_item_query(*, own: bool) -> Select[Any]:
    query = select(*_ITEM_COLUMNS, *_RENDITION_COLUMNS).where(Video.id == bindparam("video_id"))
    if own:
        query = query.where(Video.user_id == bindparam("user_id"))
    query = query.outerjoin(Rendition, Rendition.video_id == Video.id)
    return query.order_by(Rendition.height, Rendition.id)


# Built once: building a statement and its cache key costs more than SQLite's answer.
_ANY_VIDEO, _OWN_VIDEO = _video_item_query(own=False), _video_item_query(own=True)


def list_videos(
    session: Session,
    user: User,
    *,
    status: VideoStatus | None = None,
    owner_email: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Video]:
    """Newest first, paginated by key (created_at, id) so deep pages stay fast; the
    videos as ORM objects with their renditions, loaded in the same statement."""
    query = _list_query(select(Video), user, status, owner_email, limit, cursor)
    rows = list(session.scalars(query.options(joinedload(Video.renditions))).unique())
    return _page(rows, limit)


def list_video_items(
    session: Session,
    user: User,
    *,
    status: VideoStatus | None = None,
    owner_email: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    id_prefix: str | None = None,
) -> Page[VideoItem]:
    """``list_videos`` as plain values, for the API: one statement (the page joined to
    its renditions) and no ORM objects to build, track and throw away. ``id_prefix``
    (lowercase hex, as ids are) keeps the videos whose id starts with it: a range of
    the primary key, for the command line's short ids."""
    page_query = _list_query(select(*_ITEM_COLUMNS), user, status, owner_email, limit, cursor)
    if id_prefix:
        page_query = page_query.where(Video.id >= id_prefix, Video.id < id_prefix + "g")
    page = page_query.subquery("page")
    query = (
        select(page, *_RENDITION_COLUMNS)
        .outerjoin(Rendition, Rendition.video_id == page.c.id)
        .order_by(page.c.created_at.desc(), page.c.id.desc(), Rendition.height, Rendition.id)
    )
    return _page(_items(session.execute(query)), limit)


def _items(rows: Iterable[Row[Any]]) -> list[VideoItem]:
    """Videos joined to their renditions (``_ITEM_COLUMNS`` then ``_RENDITION_COLUMNS``,
    a video's rows together) as ``VideoItem``s."""
    split = len(_ITEM_COLUMNS)
    items: list[VideoItem] = []
    for row in rows:
        if not items or items[-1].id != row[0]:
            items.append(VideoItem(*row[:split]))
        if row[split] is not None:  # the outer join's row of a video without renditions
            items[-1].renditions.append(RenditionItem(*row[split:]))
    return items


def _list_query(
    query: Select[Any],
    user: User,
    status: VideoStatus | None,
    owner_email: str | None,
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    """One page and one row more (to know there is a next page), newest first.

    Every filter is an equality ahead of (created_at, id) in one index, so each page is
    a backward range scan that stops after ``limit + 1`` rows, at any depth. The owner
    is a scalar subquery, not a join: with a join PostgreSQL cannot tell that the index
    on (user_id, created_at, id) gives the order, and sorts all the owner's videos."""
    if not user.is_admin:
        query = query.where(Video.user_id == user.id)
    elif owner_email:
        owner = select(User.id).where(User.email == owner_email).scalar_subquery()
        query = query.where(Video.user_id == owner)
    if status:
        query = query.where(Video.status == status)
    if cursor:
        created, _, last_id = cursor.partition("_")
        query = query.where(
            tuple_(Video.created_at, Video.id) < (datetime.fromisoformat(created), last_id)
        )
    return query.order_by(Video.created_at.desc(), Video.id.desc()).limit(limit + 1)


def _page(rows: list[T], limit: int) -> Page[T]:
    """The first ``limit`` rows, and the cursor after the last one if there are more."""
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    return Page(rows, f"{rows[-1].created_at.isoformat()}_{rows[-1].id}")


def video_events(session: Session, user: User, video_id: str) -> list[Event]:
    get_video(session, user, video_id)
    return list(
        session.scalars(select(Event).where(Event.subject_id == video_id).order_by(Event.id))
    )


def retry_video(db: Database, user: User, video_id: str) -> None:
    """Re-run a failed video from the task that failed (owner or admin), unless its
    failure says a retry cannot help (the file itself is the problem)."""
    with db.read() as session:
        video = get_video(session, user, video_id)
        status, workflow_id, code = video.status, video.workflow_id, video.error_code
    if status != VideoStatus.FAILED or workflow_id is None:
        raise NotRetryable(f"only failed videos can be retried; this one is {status}")
    refusal = retry_refusal(code)
    if refusal is not None:
        raise NotRetryable(f"retrying cannot help: {refusal}")
    if not queue.restart_workflow(db, workflow_id, requested_by=user.email):
        raise NotRetryable("the video is no longer failed")


def retry_failed_with_code(db: Database, admin: User, code: str) -> list[str]:
    """Re-run every failed video whose error is ``code`` (after an outage, say)."""
    if not admin.is_admin:
        raise PermissionError("only admins can retry videos in bulk")
    refusal = retry_refusal(code)
    if refusal is not None:
        raise NotRetryable(f"videos failed with {code} are not retried: {refusal}")
    with db.read() as session:
        failed = session.execute(
            select(Video.id, Video.workflow_id).where(
                Video.status == VideoStatus.FAILED, Video.error_code == code
            )
        ).all()
    return [
        video_id
        for video_id, workflow_id in failed
        if workflow_id is not None
        and queue.restart_workflow(db, workflow_id, requested_by=admin.email)
    ]


def rename_video(db: Database, user: User, video_id: str, title: str) -> Video:
    """Give a video a new title (owner or admin), cleaned as at upload: one line, at
    most ``MAX_TITLE_LENGTH`` characters; an empty one is the file name again."""
    with db.write() as session:
        video = get_video(session, user, video_id)
        video.title = clean_title(title, filename=video.filename)
        video.updated_at = utcnow()
        return video


def delete_video(db: Database, store: MediaStore, user: User, video_id: str) -> None:
    """Remove the rows first, then the files: a worker still on one of its tasks loses
    its lease with the rows and stops, and nothing points at a missing file."""
    with db.write() as session:
        video = get_video(session, user, video_id)
        workflow_id = video.workflow_id
        session.delete(video)
        session.flush()
        if workflow_id is not None:
            workflow = session.get(Workflow, workflow_id)
            if workflow is not None:
                session.delete(workflow)
    store.delete_video(video_id)


def video_as_dict(
    video: Video | VideoItem, public_url: str, *, hls: bool = True, mp4_downloads: bool = True
) -> dict[str, Any]:
    """The API's representation of a video (SPEC §4). A rendition is listed as soon as
    it is made; ``hls_url`` (the master playlist) once one plays, which may be while it
    is still being made (``streaming_rendition``), unless this instance makes no HLS
    (``hls``: false in simulation); a rendition's ``url`` (its MP4) is null when MP4
    downloads are off."""
    base = f"{public_url}/api/v1/videos/{video.id}"
    error = None
    if video.error_code:
        error = {
            "code": video.error_code,
            "message": video.error_message,
            "recoverable": bool(video.error_recoverable),
        }
    return {
        "id": video.id,
        "status": video.status,
        "progress": video.progress,
        "title": video.title,
        "filename": video.filename,
        "size_bytes": video.size_bytes,
        "sha256": video.sha256,
        "duration_s": video.duration_s,
        "width": video.width,
        "height": video.height,
        "attempts": video.attempts,
        "error": error,
        "next_retry_at": iso(video.next_retry_at),
        "renditions": [
            {
                "name": r.name,
                "width": r.width,
                "height": r.height,
                "size_bytes": r.size_bytes,
                "url": f"{base}/renditions/{r.name}" if mp4_downloads else None,
            }
            for r in video.renditions
        ],
        "hls_url": f"{base}/hls/master.m3u8" if hls and playing(video) else None,
        "thumbnail_url": f"{base}/thumbnail" if video.has_thumbnail else None,
        "created_at": iso(video.created_at),
        "updated_at": iso(video.updated_at),
    }


def playing(video: Video | VideoItem) -> list[str]:
    """The renditions that play: those made, and the one still being made, if any."""
    made = [rendition.name for rendition in video.renditions]
    streaming = video.streaming_rendition
    return [*made, streaming] if streaming and streaming not in made else made


def event_as_dict(event: Event) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "task": event.task,
        "attempt": event.attempt,
        "worker": event.worker,
        "data": event.data,
    }


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None
