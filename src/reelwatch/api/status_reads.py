"""The status read, ``GET /api/v1/videos/{id}`` with a bearer token: the request clients
repeat most (polling until a video is ready), answered here without FastAPI's routing
and dependency solving, which cost more than the read itself (docs/performance.md §5).

Only a success is answered here, with what the route would answer (the same function
makes the JSON). Anything else goes on to the route, which answers as before: another
method or path, an id the route would refuse, no bearer token (the pages' session
cookie), an unknown token, a video this user may not see, any error. So every error,
its body, status and headers stay the route's. This layer sits inside all the others
(session, compression, the NUL check, security headers, request ids), so its answers
pass through them like the route's.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from reelwatch.api.deps import Services, services_of
from reelwatch.api.routes.videos import video_json
from reelwatch.api.validation import MAX_ID_LENGTH
from reelwatch.videos.service import VideoNotFound

VIDEO_PATH = re.compile(rf"/api/v1/videos/([^/]{{1,{MAX_ID_LENGTH}}})")
AUTHORIZATION = b"authorization"

log = logging.getLogger(__name__)


class StatusReads:
    """ASGI middleware answering a status read that will succeed, passing on the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = VIDEO_PATH.fullmatch(_route_path(scope))
            token = _bearer_token(scope) if match else None
            if match and token:
                body = await _video(services_of(scope["app"]), token, match.group(1))
                if body is not None:
                    await JSONResponse(body)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _video(svc: Services, token: str, video_id: str) -> dict[str, Any] | None:
    """The video's JSON, or None when the route should answer."""
    try:
        viewer = await svc.tokens.bearer(svc.db, token)
        if viewer is None:
            return None
        if svc.db.reads_without_waiting:
            with contextlib.suppress(OperationalError):  # locked: read off the loop instead
                return video_json(svc, viewer, video_id, svc.db.read_without_waiting)
        return await run_in_threadpool(video_json, svc, viewer, video_id, svc.db.read_statement)
    except VideoNotFound:
        return None
    except Exception:  # the route meets it again and answers it its own way
        log.debug("status read passed to the route after an error", exc_info=True)
        return None


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == AUTHORIZATION:
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None
