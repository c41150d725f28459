"""Every error leaves as ``{"error": {"code", "message"}}``; tracebacks stay in the log."""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelwatch.api.protection import BodyTimeout
from reelwatch.inputs import InvalidInput
from reelwatch.storage import StorageError
from reelwatch.videos.service import NotRetryable, VideoNotFound

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


def http_code(status: int) -> str:
    """The error code an HTTP status stands for, when nothing more precise is known."""
    return _HTTP_CODES.get(status, "error")


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers=dict(headers) if headers else None,
    )


# What a full, read-only or failing media store raises while an upload is written.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(VideoNotFound)
    async def _not_found(_: Request, exc: VideoNotFound) -> JSONResponse:
        return error_response(404, "not_found", f"no video {exc}")

    @app.exception_handler(BodyTimeout)
    async def _body_timeout(_: Request, exc: BodyTimeout) -> JSONResponse:
        # Closed after the answer: the rest of the body may still be on its way.
        return error_response(408, "request_timeout", str(exc), {"Connection": "close"})

    @app.exception_handler(NotRetryable)
    async def _not_retryable(_: Request, exc: NotRetryable) -> JSONResponse:
        return error_response(409, "not_retryable", str(exc))

    @app.exception_handler(InvalidInput)
    async def _invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc))

    @app.exception_handler(PermissionError)
    async def _forbidden(_: Request, exc: PermissionError) -> JSONResponse:
        return error_response(403, "forbidden", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, http_code(exc.status_code), str(exc.detail), exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return error_response(422, "invalid_request", f"{where}: {first['msg']}")

    @app.exception_handler(OperationalError)
    async def _database_away(request: Request, exc: OperationalError) -> JSONResponse:
        # A restart or failover of the database: the request may simply be sent again.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        message = "the database is unreachable for a moment; please try again"
        return error_response(503, "unavailable", message, {"Retry-After": "5"})

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A safety net: inputs are checked at the edge (api/validation.py), so a value the
        # database still refuses (a NUL, a number out of range) is the request's fault.
        log.warning(
            "database refused a value on %s %s: %s", request.method, request.url.path, exc.orig
        )
        return error_response(422, "invalid_request", "a value in this request cannot be stored")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "something went wrong on our side")

    @app.exception_handler(OSError)
    async def _storage_away(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno not in STORAGE_ERRNOS:
            return await _unexpected(request, exc)
        # A full or unmounted media store: nothing was kept; the upload may be sent later.
        log.warning("media store unavailable on %s %s: %s", request.method, request.url.path, exc)
        # A bucket's error names its keys and endpoint: for the log, not for the client.
        why = "object storage unavailable" if isinstance(exc, StorageError) else exc.strerror
        message = f"the media store cannot take files right now ({why}); please try again later"
        return error_response(503, "storage_unavailable", message, {"Retry-After": "60"})
