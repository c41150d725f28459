"""A request id for every HTTP request: the client's ``X-Request-ID`` when it is a sane
token (a proxy's, say), else a new one; set for the request's log lines and returned
in the response's ``X-Request-ID``, so a user's report finds its log lines."""

from __future__ import annotations

import logging
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelwatch.inputs import shown
from reelwatch.logs import request_id

HEADER = b"x-request-id"
# Letters, digits and . _ : - up to 128: UUIDs, nginx's $request_id, tracing ids. Anything
# else (a line break, a kilobyte) is replaced, never echoed into a header or a log.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("reelwatch.access")


class RequestIds:
    """Outermost ASGI middleware; with ``log_requests``, one access line a request."""

    def __init__(self, app: ASGIApp, *, log_requests: bool) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _sane(dict(scope["headers"]).get(HEADER)) or new_request_id()
        # Not reset: uvicorn serves each request in its own task (its own context), and
        # its log of an exception escaping the app comes after this returns.
        request_id.set(rid)
        started = time.monotonic()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log_requests:
                access_log.info(
                    "%s %s %d %.0f ms",
                    scope["method"],
                    shown(scope["path"]),
                    status,
                    (time.monotonic() - started) * 1000,
                )


def new_request_id() -> str:
    """32 hex digits, like a UUID's. Not a secret, so not from os.urandom: that is a
    system call per request (a tenth of a status read's time under load)."""
    return f"{random.getrandbits(128):032x}"


def _sane(value: bytes | None) -> str | None:
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if SANE_REQUEST_ID.fullmatch(text) else None
