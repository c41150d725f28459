"""``/api/v1/videos``: upload, read, rename, retry and delete videos, and fetch their files."""

from __future__ import annotations

import contextlib
import json
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
from reelwatch.api.files import file_response
from reelwatch.api.upload import receive_upload
from reelwatch.api.validation import MAX_ID_LENGTH, PathId, Text
from reelwatch.database import utcnow
from reelwatch.db.models import User, Video
from reelwatch.inputs import MAX_TITLE_LENGTH
from reelwatch.insights.queue_wait import expected_wait
from reelwatch.media import hls
from reelwatch.notices.admission import Decision, admit_upload
from reelwatch.notices.service import active_notices
from reelwatch.notices.status import subscribe
from reelwatch.storage import HLS_FOLDER, THUMBNAIL, Incoming, rendition_file
from reelwatch.videos import service
from reelwatch.videos.status import VideoStatus

router = APIRouter(prefix="/api/v1/videos", tags=["videos"])
# A master playlist grows while the ladder is made: always ask again.
NO_CACHE = {"Cache-Control": "private, no-cache"}


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
    incoming: Incoming = upload.incoming  # type: ignore[assignment]
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
    body = _as_dict(video, svc)
    if decision.message:
        body["warning"] = decision.message
    return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/videos/{video.id}"})


def _as_dict(video: Video | service.VideoItem, svc: Services) -> dict[str, Any]:
    settings = svc.settings
    return service.video_as_dict(
        video,
        settings.resolved_public_url,
        hls=not settings.simulate,
        mp4_downloads=settings.mp4_downloads,
    )


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
        return {
            "videos": [_as_dict(v, svc) for v in page.videos],
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
    return _as_dict(video, svc)


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
    return _as_dict(video, svc)


@router.delete("/{video_id}", status_code=204)
def delete_video(video_id: PathId, svc: ServicesDep, user: UserDep) -> Response:
    service.delete_video(svc.db, svc.store, user, video_id)
    return Response(status_code=204)


@router.get("/{video_id}/renditions/{name}", response_class=FileResponse)
async def get_rendition(
    request: Request, video_id: PathId, name: PathId, svc: ServicesDep, user: UserDep
) -> Response:
    """The file; with media in a bucket, a 307 to a presigned link (or proxied)."""
    await run_in_threadpool(_check_rendition, svc, user, video_id, name)
    if not svc.settings.mp4_downloads:
        raise ApiError(404, "not_found", "MP4 downloads are off here: play the HLS stream")
    return await file_response(
        request,
        svc,
        video_id,
        rendition_file(name),
        media_type="video/mp4",
        filename=f"{video_id}-{name}.mp4",
    )


def _check_rendition(svc: Services, user: User, video_id: str, name: str) -> None:
    if name not in _made_renditions(svc, user, video_id):
        raise ApiError(404, "not_found", f"video {video_id} has no rendition {name!r}")


def _made_renditions(svc: Services, user: User, video_id: str) -> set[str]:
    """The renditions of a video the user may see (404 for another's video)."""
    with svc.db.read() as session:
        return {r.name for r in service.get_video(session, user, video_id).renditions}


def _playing_renditions(svc: Services, user: User, video_id: str) -> set[str]:
    """The renditions whose HLS variant plays: made, or still being made."""
    with svc.db.read() as session:
        return set(service.playing(service.get_video(session, user, video_id)))


@router.get("/{video_id}/hls/{path:path}")
async def get_hls(
    request: Request, video_id: PathId, path: str, svc: ServicesDep, user: UserDep
) -> Response:
    """The video's HLS files: ``master.m3u8`` (the variants that play so far, one of them
    perhaps still being made, while the rest of the ladder is) and
    ``<variant>/index.m3u8``, ``init.mp4``, ``seg-NNNNN.m4s``.
    Only names the store writes are served; anything else is 404, never a file.
    Playlists always come from this server (their segment links are relative to it);
    segments, like renditions, may be a redirect to the bucket."""
    if not hls.is_served_name(path):
        raise ApiError(404, "not_found", f"video {video_id} has no HLS file {path[:100]!r}")
    playing = await run_in_threadpool(_playing_renditions, svc, user, video_id)
    if path == hls.MASTER:
        playlist = await run_in_threadpool(_master_playlist, svc, video_id, playing)
        return Response(playlist, media_type=hls.content_type(path), headers=NO_CACHE)
    if path.partition("/")[0] not in playing:
        raise ApiError(404, "not_found", f"video {video_id} has no HLS file {path!r}")
    relative = f"{HLS_FOLDER}/{path}"
    if path.endswith(hls.MEDIA_PLAYLIST):
        # Never cached: while its variant is being made, it grows.
        playlist = await run_in_threadpool(_stored_text, svc, video_id, relative)
        return Response(playlist, media_type=hls.content_type(path), headers=NO_CACHE)
    return await file_response(request, svc, video_id, relative, media_type=hls.content_type(path))


def _master_playlist(svc: Services, video_id: str, playing: set[str]) -> str:
    """The master playlist of the variants that play so far, from their ``variant.json``
    (or ``early.json``, while one is still being made)."""
    if svc.settings.simulate:  # the stand-in transcoder makes no HLS
        raise ApiError(404, "not_found", f"video {video_id} has no HLS stream here")
    variants = []
    for name in sorted(playing):
        info = _variant_info(svc, video_id, name)
        if info is not None:  # None: a rendition made before HLS was
            variants.append(hls.Variant(**json.loads(info)))
    if not variants:
        raise ApiError(404, "not_found", f"video {video_id} has no HLS stream yet")
    return hls.master_playlist(hls.by_bandwidth(variants))


def _variant_info(svc: Services, video_id: str, name: str) -> bytes | None:
    for marker in (hls.VARIANT_INFO, hls.EARLY_VARIANT_INFO):
        with contextlib.suppress(FileNotFoundError):
            return svc.store.read_bytes(video_id, f"{HLS_FOLDER}/{name}/{marker}")
    return None


def _stored_text(svc: Services, video_id: str, relative: str) -> str:
    try:
        return svc.store.read_bytes(video_id, relative).decode()
    except FileNotFoundError:
        raise ApiError(404, "not_found", f"video {video_id} has no HLS file {relative!r}") from None


@router.get("/{video_id}/thumbnail", response_class=FileResponse)
async def get_thumbnail(
    request: Request, video_id: PathId, svc: ServicesDep, user: UserDep
) -> Response:
    await run_in_threadpool(_check_thumbnail, svc, user, video_id)
    return await file_response(request, svc, video_id, THUMBNAIL, media_type="image/jpeg")


def _check_thumbnail(svc: Services, user: User, video_id: str) -> None:
    with svc.db.read() as session:
        if not service.get_video(session, user, video_id).has_thumbnail:
            raise ApiError(404, "not_found", f"video {video_id} has no thumbnail yet")
