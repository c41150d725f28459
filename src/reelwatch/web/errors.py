"""Errors in the reader's format: an HTML page, with a way back, for a browser; the API's
``{"error": {"code", "message"}}`` for everything else.

The API's handlers (``reelwatch.api.errors``) decide status, message and headers; for a
browser the answer is rendered as a page instead. The API, the metrics and the health
checks always answer JSON, whatever the client accepts.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from reelwatch.api.deps import services
from reelwatch.api.errors import error_response, http_code
from reelwatch.api.session import session_user
from reelwatch.web.templating import PAGE_HEADERS, render, templates

log = logging.getLogger(__name__)

# For programs, with whatever is under them: JSON whatever the client accepts.
JSON_PATHS = ("/api", "/stream", "/metrics", "/healthz", "/readyz", "/openapi.json")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# For the bare reason phrases of Starlette's own errors (an unknown path, a wrong method).
SENTENCES = {
    404: "There is no page at this address.",
    405: "This address does not take that kind of request.",
    500: "Something went wrong on our side; it has been noted. Please try again.",
}
HEADINGS = {
    400: "That did not work",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not possible here",
    408: "Too slow",
    413: "Too large",
    415: "Not understood",
    422: "Not valid",
    429: "Too many attempts",
    503: "Unavailable for a moment",
}
KEPT_HEADERS = ("allow", "retry-after", "connection", "www-authenticate")

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


def wants_html(request: Request) -> bool:
    path = request.url.path
    if any(path == prefix or path.startswith(prefix + "/") for prefix in JSON_PATHS):
        return False
    return accepts_html(request.headers.get("accept", ""))


def accepts_html(accept: str) -> bool:
    """Whether an Accept header names HTML (not with q=0): browsers do; curl's ``*/*``
    and API clients' ``application/json`` do not."""
    for item in accept.split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if media_type.lower() in HTML_TYPES and not any(_refused(param) for param in params):
            return True
    return False


def _refused(param: str) -> bool:
    name, _, value = param.partition("=")
    try:
        return name.strip().lower() == "q" and float(value) == 0
    except ValueError:
        return False


def error_answer(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error as a page for a browser, as the API's JSON otherwise."""
    if wants_html(request):
        page = error_page(request, status, message)
        page.headers.update(headers or {})
        return page
    return error_response(status, http_code(status), message, headers)


def error_page(request: Request, status: int, message: str) -> Response:
    context = {
        "status": status,
        "message": message,
        "heading": HEADINGS.get(status, "Something went wrong"),
    }
    try:
        svc = services(request)
        user = session_user(request, svc.db)
        return render(request, svc, "error.html.j2", context, user=user, status_code=status)
    except Exception as exc:  # the database or the session may be what failed
        log.warning("error page %s without session or banners: %r", status, exc)
        bare: dict[str, Any] = {
            "user": None,
            "csrf_token": "",
            "environment": "",
            "banners": [],
            "flashes": [],
        }
        return templates.TemplateResponse(
            request, "error.html.j2", {**bare, **context}, status_code=status, headers=PAGE_HEADERS
        )


def pages_for_browsers(app: FastAPI) -> None:
    """Wraps each of the API's exception handlers so that a browser gets a page."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _as_page(handler)


def _as_page(handler: Handler) -> Callable[[Request, Exception], Awaitable[Any]]:
    async def handle(request: Request, exc: Exception) -> Any:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        if not isinstance(response, JSONResponse) or not wants_html(request):
            return response
        status = response.status_code
        message = json.loads(bytes(response.body))["error"]["message"]
        if status in SENTENCES and (status >= 500 or message == HTTPStatus(status).phrase):
            message = SENTENCES[status]
        elif status == 422:
            message = f"that address or form is not valid ({message})"
        headers = {
            name: response.headers[name] for name in KEPT_HEADERS if name in response.headers
        }
        return error_answer(request, status, _sentence_case(message), headers)

    return handle


def _sentence_case(message: str) -> str:
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."
