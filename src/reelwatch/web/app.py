"""The whole HTTP app: the JSON API (``reelwatch.api``) with the pages, their static files,
sessions and error pages installed on it (``install_web``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from reelwatch.api import create_api
from reelwatch.api.errors import error_response
from reelwatch.api.session import CSRF_HEADER, CsrfError, install_sessions
from reelwatch.config import Settings
from reelwatch.web import actions, admin, docs, pages, status_page, stream
from reelwatch.web.assets import STATIC, FingerprintedStaticFiles, static_url
from reelwatch.web.deps import LoginRequired, PageError, login_url
from reelwatch.web.errors import error_answer, pages_for_browsers, wants_html


def create_app(settings: Settings) -> FastAPI:
    """The app ``reelwatch server`` serves; migrations are the caller's job."""
    app = create_api(settings)
    install_web(app, settings)
    return app


def install_web(app: FastAPI, settings: Settings) -> None:
    pages_for_browsers(app)  # before the pages' own handlers, which answer pages already
    install_sessions(app, settings)
    app.mount("/static", FingerprintedStaticFiles(directory=STATIC), name="static")
    app.add_api_route("/favicon.ico", _favicon, include_in_schema=False)
    if app.openapi_url:  # the API describes itself (REELWATCH_API_DOCS)
        app.include_router(docs.router)
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.include_router(actions.router)
    app.include_router(stream.router)
    app.include_router(status_page.router)
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(PageError, _page_error)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfError, _csrf_error)  # type: ignore[arg-type]


def _favicon() -> RedirectResponse:
    # Browsers ask for /favicon.ico by themselves; the icon is an SVG.
    return RedirectResponse(static_url("favicon.svg"), status_code=301)


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    if request.url.path.startswith("/stream/"):
        return error_response(401, "unauthorized", "sign in again")
    return RedirectResponse(login_url(exc.next_path), status_code=303)


async def _page_error(request: Request, exc: PageError) -> Response:
    return error_answer(request, exc.status, exc.message, exc.headers)


async def _csrf_error(request: Request, exc: CsrfError) -> Response:
    if wants_html(request):
        return error_answer(request, 403, str(exc).capitalize() + ".")
    return error_response(403, "forbidden", f"{exc}; send the {CSRF_HEADER} header")
