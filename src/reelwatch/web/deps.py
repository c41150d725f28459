"""Who is asking, for the pages: the session's user, or a trip to the sign-in page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData

from reelwatch.api.deps import ServicesDep
from reelwatch.db.models import User
from reelwatch.web.session import CSRF_FIELD, check_csrf, session_user


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
    """The posted form, once its CSRF token matched the session's."""
    form = await request.form()
    check_csrf(request, form.get(CSRF_FIELD))
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def login_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"


def safe_next(value: object, default: str = "/videos") -> str:
    """A redirect target on this site only: a path, never ``//host`` or a scheme."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return default
