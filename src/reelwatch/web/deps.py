"""Who is asking, for the pages: the session's user, or a trip to the sign-in page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from starlette.datastructures import FormData, UploadFile

from reelwatch.api.deps import ServicesDep
from reelwatch.api.session import CSRF_FIELD, check_csrf, session_user
from reelwatch.db.models import User

# The pages' forms hold a few short fields (a token, an address, a password).
MAX_PAGE_FORM_BYTES = 16 * 1024


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """An error page: a status code and a sentence for the person reading it (and
    headers, such as Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def page_user(request: Request, svc: ServicesDep) -> User:
    user = session_user(request, svc.db)
    if user is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(here)
    return user


PageUserDep = Annotated[User, Depends(page_user)]


def admin_page_user(user: PageUserDep) -> User:
    if not user.is_admin:
        raise PageError(403, "This page is for admins.")
    return user


AdminUserDep = Annotated[User, Depends(admin_page_user)]


async def checked_form(request: Request) -> FormData:
    """The posted form (what a page's HTML form sends), once its CSRF token matched the
    session's. Read within ``MAX_PAGE_FORM_BYTES``, and no field may hold a NUL (no text
    input may: PostgreSQL cannot store it)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise PageError(415, "This page takes its own form only; please send it again.")
    body = await _bounded_body(request, MAX_PAGE_FORM_BYTES)
    text = body.decode("utf-8", "replace")
    pairs: list[tuple[str, str | UploadFile]] = [
        *parse_qsl(text, keep_blank_values=True, errors="replace")
    ]
    form = FormData(pairs)
    check_csrf(request, form.get(CSRF_FIELD))
    if any("\x00" in str(value) for _, value in pairs):
        raise PageError(400, "The form holds a NUL character; please type it again.")
    return form


async def _bounded_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PageError(413, "That form is far larger than any page here sends.")
    return bytes(body)


FormDep = Annotated[FormData, Depends(checked_form)]


def login_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"


def safe_next(value: object, default: str = "/videos") -> str:
    """A redirect target on this site only: a path, never ``//host`` or a scheme."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return default
