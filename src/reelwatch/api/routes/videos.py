"""``/api/v1/videos``: upload, read, rename, retry and delete videos, and fetch their files."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from reelwatch.api.deps import Services, ServicesDep, UserDep
from reelwatch.api.errors import ApiError
from reelwatch.api.upload import receive_upload
from reelwatch.api.validation import MAX_ID_LENGTH, PathId, Text
from reelwatch.database import utcnow
from reelwatch.db.models import User
from reelwatch.inputs import MAX_TITLE_LENGTH
from reelwatch.insights.queue_wait import expected_wait
from reelwatch.notices.admission import Decision, admit_upload
from reelwatch.notices.service import active_notices
from reelwatch.notices.status import subscribe
from reelwatch.storage.local import IncomingFile
from reelwatch.videos import service
from reelwatch.videos.status import VideoStatus

router = APIRouter(prefix="/api/v1/videos", tags=["videos"])


@router.post("", status_code=201)
async def upload_video(request: Request, svc: ServicesDep, user: UserDep) -> Response:
    """Multipart field ``file`` (and optional ``title``). Answers 201 only once the
    original is fsync'ed in the store and the video is recorded; 503 with Retry-After
    before reading the body when a notice or the queue refuses uploads now."""
    decision = await run_in_threadpool(_admit, svc, user)
    if not decision.accepted:
        retry_after = {"Retry-After": str(decision.retry_after_s or 60)}
        raise ApiError(503, decision.code, decision.message or "", headers=retry_after)
    upload = await receive_upload(request, svc.store, svc.settings.max_upload_bytes)
    incoming: IncomingFile = upload.incoming  # type: ignore[assignment]
    try:
        video = await run_in_threadpool(
            service.accept_upload,
            svc.db,
            svc.store,
            user,
            incoming,
            filename=upload.filename,
            title=upload.fields.get("title"),
            hold_until=decision.hold_until,
        )
    except BaseException:
        incoming.discard()
        raise
    body = service.video_as_dict(video, svc.settings.resolved_public_url)
    if decision.message:
        body["warning"] = decision.message
    return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/videos/{video.id}"})


def _admit(svc: Services, user: User) -> Decision:
    now = utcnow()
    settings = svc.settings
    with svc.db.read() as session:  # two indexed reads, not the load's aggregates
        active = active_notices(session, now)
        wait_s = expected_wait(
            session,
            now,
            monitor_interval_s=settings.monitor_interval_seconds,
            lease_s=settings.lease_seconds,
        )
    decision = admit_upload(active, wait_s, settings, now)
    if decision.tell_when_back:
        with svc.db.write() as session:
            subscribe(session, user.email, now)
    return decision


@router.get("")
def list_videos(
    svc: ServicesDep,
    user: UserDep,
    status: VideoStatus | None = None,
    owner: Annotated[str | None, Query(alias="user", max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2 * MAX_ID_LENGTH)] = None,
    id_prefix: Annotated[
        str | None,
        Query(pattern="^[0-9a-f]{1,32}$", description="Only videos whose id starts so."),
    ] = None,
) -> dict[str, Any]:
    with svc.db.read() as session:
        try:
            page = service.list_video_items(
                session,
                user,
                status=status,
                owner_email=owner,
                limit=limit,
                cursor=cursor,
                id_prefix=id_prefix,
            )
        except ValueError:  # a cursor this API did not hand out
            raise ApiError(422, "invalid_request", "cursor: not a cursor from this list") from None
        url = svc.settings.resolved_public_url
        return {
            "videos": [service.video_as_dict(v, url) for v in page.videos],
            "next_cursor": page.next_cursor,
        }


@router.get("/{video_id}", response_model=dict[str, Any])
async def get_video(video_id: PathId, svc: ServicesDep, user: UserDep) -> Response:
    """The request clients repeat most (polling a status): async, with one trip to the
    thread pool for the read, and the JSON written as it is (FastAPI would check a
    returned dict against the response model in the thread pool, a second trip)."""
    return JSONResponse(await run_in_threadpool(video_json, svc, user, video_id))


def video_json(
    svc: Services,
    viewer: service.Viewer,
    video_id: str,
    connect: Callable[[], AbstractContextManager[Connection]] | None = None,
) -> dict[str, Any]:
    """The video's JSON, read on a connection from ``connect`` (``Database.read_rows``)."""
    with (connect or svc.db.read_rows)() as connection:
        video = service.get_video_item(connection, viewer, video_id)
    return service.video_as_dict(video, svc.settings.resolved_public_url)


@router.get("/{video_id}/events")
def get_events(video_id: PathId, svc: ServicesDep, user: UserDep) -> list[dict[str, Any]]:
    with svc.db.read() as session:
        return [service.event_as_dict(e) for e in service.video_events(session, user, video_id)]


@router.post("/{video_id}/retry", status_code=202)
def retry_video(video_id: PathId, svc: ServicesDep, user: UserDep) -> dict[str, Any]:
    service.retry_video(svc.db, user, video_id)
    return video_json(svc, user, video_id)


class RenameRequest(BaseModel):
    # The length is clean_title's to check, after cleaning; this only bounds the body.
    title: Text = Field(max_length=10 * MAX_TITLE_LENGTH)


@router.patch("/{video_id}")
def rename_video(
    video_id: PathId, svc: ServicesDep, user: UserDep, body: RenameRequest
) -> dict[str, Any]:
    """A new title (owner or admin): one line, at most 200 characters; empty, it is the
    file name. 404 for a video that is not theirs, 422 for a title that cannot be."""
    video = service.rename_video(svc.db, user, video_id, body.title)
    return service.video_as_dict(video, svc.settings.resolved_public_url)


@router.delete("/{video_id}", status_code=204)
def delete_video(video_id: PathId, svc: ServicesDep, user: UserDep) -> Response:
    service.delete_video(svc.db, svc.store, user, video_id)
    return Response(status_code=204)


@router.get("/{video_id}/renditions/{name}")
def get_rendition(video_id: PathId, name: PathId, svc: ServicesDep, user: UserDep) -> FileResponse:
    with svc.db.read() as session:
        video = service.get_video(session, user, video_id)
        if name not in {r.name for r in video.renditions}:
            raise ApiError(404, "not_found", f"video {video_id} has no rendition {name!r}")
    return FileResponse(
        svc.store.rendition_path(video_id, name),
        media_type="video/mp4",
        filename=f"{video_id}-{name}.mp4",
    )


@router.get("/{video_id}/thumbnail")
def get_thumbnail(video_id: PathId, svc: ServicesDep, user: UserDep) -> FileResponse:
    with svc.db.read() as session:
        if not service.get_video(session, user, video_id).has_thumbnail:
            raise ApiError(404, "not_found", f"video {video_id} has no thumbnail yet")
    return FileResponse(svc.store.thumbnail_path(video_id), media_type="image/jpeg")
