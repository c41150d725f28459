"""Protections around every response: the security headers, and a deadline for each
piece of a request body (uvicorn has none, so a client that stops sending mid-body would
hold its connection and its handler for ever).

Both are plain ASGI wrappers, not ``BaseHTTPMiddleware``, so streamed uploads and
Server-Sent Events pass through untouched. ``ReelwatchApp`` puts them outside every other
layer, so even a 500 from Starlette's last-resort error handler carries the headers.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelwatch.api.request_id import RequestIds
from reelwatch.config import Settings
from reelwatch.storage import download_origin

# Scripts only from this site; inline styles allowed for e-mail bodies and SVG; media
# from blob: too, the Media Source that hls.js feeds the player through.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# /docs runs Swagger UI from this site's files, started by a script file, not inline
# (reelwatch.web.docs): the same policy, plus the blob: workers Swagger UI may start.
DOCS_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY + "; worker-src 'self' blob:"
DOCS_PATHS = ("/docs",)
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts are not ours


def with_media_origin(csp: str, origin: str | None) -> str:
    """``csp`` letting images and media come from ``origin`` too: the bucket that
    downloads are redirected to (REELWATCH_S3_DOWNLOADS=redirect), which hls.js also
    fetches the HLS segments from."""
    if not origin:
        return csp
    widened = csp.replace("img-src 'self'", f"img-src 'self' {origin}").replace(
        "media-src 'self'", f"media-src 'self' {origin}"
    )
    return f"{widened}; connect-src 'self' {origin}"


def security_headers(*, https: bool, csp: str = CONTENT_SECURITY_POLICY) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeaders:
    """Sets the security headers on every HTTP response, whatever produced it."""

    def __init__(self, app: ASGIApp, *, https: bool, media_origin: str | None = None) -> None:
        self.app = app
        csp = with_media_origin(CONTENT_SECURITY_POLICY, media_origin)
        self.headers = security_headers(https=https, csp=csp)
        self.docs_headers = security_headers(https=https, csp=DOCS_CONTENT_SECURITY_POLICY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self.docs_headers if scope["path"].startswith(DOCS_PATHS) else self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(wanted)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTimeout(Exception):
    """No piece of the request body arrived in time; answered 408 (api/errors.py)."""


class BodyDeadline:
    """Raises ``BodyTimeout`` in whoever reads the request body when ``seconds`` pass
    without a new piece of it. Once the body is complete, reads (an event stream waiting
    for the client to leave) wait as long as they like."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_complete = False

        async def receive_in_time() -> Message:
            nonlocal body_complete
            if body_complete:
                return await receive()
            with anyio.move_on_after(self.seconds) as deadline:
                message = await receive()
            if deadline.cancelled_caught:
                raise BodyTimeout(f"no part of the request body came for {self.seconds:g} s")
            body_complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, receive_in_time, send)


class ReelwatchApp(FastAPI):
    """FastAPI with the protections above wrapped around its whole middleware stack."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard_settings = settings

    def build_middleware_stack(self) -> ASGIApp:
        stack = BodyDeadline(
            super().build_middleware_stack(), seconds=self.guard_settings.body_timeout_seconds
        )
        headers = SecurityHeaders(
            stack,
            https=self.guard_settings.https,
            media_origin=download_origin(self.guard_settings),
        )
        # Outermost: every answer carries its id, the 500s of a crash included.
        return RequestIds(headers, log_requests=self.guard_settings.log_format == "json")
