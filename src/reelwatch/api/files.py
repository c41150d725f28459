"""A video's files as HTTP answers, from whichever store holds them.

On local disk, the file itself (``FileResponse``: ranges, ``Last-Modified``). In a
bucket, a redirect to a presigned link by default (the bucket serves the bytes and the
ranges), or the bytes proxied through this server (``REELWATCH_S3_DOWNLOADS=proxy``),
passing a single ``Range`` on. The caller has already checked who may read the file.
"""

from __future__ import annotations

import re

from fastapi import Request, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from reelwatch.api.deps import Services
from reelwatch.api.errors import ApiError
from reelwatch.storage.base import checked_relative

# One range, the form players send; anything else gets the whole file, as RFC 9110 allows.
SINGLE_RANGE = re.compile(r"bytes=(\d{1,19})?-(\d{1,19})?")


async def file_response(
    request: Request,
    svc: Services,
    video_id: str,
    relative: str,
    *,
    media_type: str,
    filename: str | None = None,
) -> Response:
    try:
        checked_relative(relative)
    except ValueError:
        raise ApiError(404, "not_found", f"video {video_id} has no such file") from None
    store = svc.store
    path = await run_in_threadpool(store.local_file, video_id, relative)
    if path is not None:
        return FileResponse(path, media_type=media_type, filename=filename)
    from reelwatch.storage.s3 import S3Store  # boto3 is loaded only with a bucket

    if not isinstance(store, S3Store):
        raise ApiError(404, "not_found", f"video {video_id}: {relative} is not in the store")
    if svc.settings.s3_downloads == "redirect":
        link = await run_in_threadpool(store.presigned_url, video_id, relative, filename=filename)
        return RedirectResponse(link, status_code=307, headers={"Cache-Control": "no-store"})
    return await _proxied(request, store, video_id, relative, media_type, filename)


async def _proxied(
    request: Request,
    store: object,
    video_id: str,
    relative: str,
    media_type: str,
    filename: str | None,
) -> Response:
    from reelwatch.storage.s3 import S3Store

    assert isinstance(store, S3Store)
    asked = request.headers.get("range", "")
    byte_range = asked if SINGLE_RANGE.fullmatch(asked) and asked != "bytes=-" else None
    try:
        stream = await run_in_threadpool(store.open_stream, video_id, relative, byte_range)
    except FileNotFoundError:
        raise ApiError(
            404, "not_found", f"video {video_id}: {relative} is not in the store"
        ) from None
    except ValueError:
        raise ApiError(
            416, "range_not_satisfiable", "the range asked is outside the file"
        ) from None
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(stream.size_bytes)}
    if filename:  # made from an id and a rendition name, both checked: never a user's text
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    status = 200
    if stream.content_range:
        headers["Content-Range"] = stream.content_range
        status = 206
    return StreamingResponse(
        stream.chunks, status_code=status, headers=headers, media_type=media_type
    )
