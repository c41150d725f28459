"""The whole HTTP app: the JSON API (``reelwatch.api``) with the pages, their static files,
sessions and error pages installed on it (``install_web``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from reelwatch.api import create_api
from reelwatch.api.deps import services
from reelwatch.api.errors import error_response
from reelwatch.api.session import CSRF_HEADER, CsrfError, install_sessions, session_user
from reelwatch.config import Settings
from reelwatch.web import actions, admin, pages, status_page, stream
from reelwatch.web.deps import LoginRequired, PageError, login_url
from reelwatch.web.templating import STATIC, render


def create_app(settings: Settings) -> FastAPI:
    """The app ``reelwatch server`` serves; migrations are the caller's job."""
    app = create_api(settings)
    install_web(app, settings)
    return app


def install_web(app: FastAPI, settings: Settings) -> None:
    install_sessions(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.include_router(actions.router)
    app.include_router(stream.router)
    app.include_router(status_page.router)
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(PageError, _page_error)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfError, _csrf_error)  # type: ignore[arg-type]


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    if request.url.path.startswith("/stream/"):
        return error_response(401, "unauthorized", "sign in again")
    return RedirectResponse(login_url(exc.next_path), status_code=303)


def error_page(request: Request, status: int, message: str) -> Response:
    svc = services(request)
    user = session_user(request, svc.db)
    context = {"status": status, "message": message}
    return render(request, svc, "error.html.j2", context, user=user, status_code=status)


async def _page_error(request: Request, exc: PageError) -> Response:
    page = error_page(request, exc.status, exc.message)
    page.headers.update(exc.headers)
    return page


async def _csrf_error(request: Request, exc: CsrfError) -> Response:
    if request.url.path.startswith("/api/"):
        return error_response(403, "forbidden", f"{exc}; send the {CSRF_HEADER} header")
    return error_page(request, 403, str(exc).capitalize() + ".")
