"""Rendering pages: the Jinja2 environment (autoescaped), its filters and the context every
page shares (user, CSRF token, environment, banners). The security headers are on every
response (reelwatch.api.protection)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, Undefined

from reelwatch.api.deps import Services
from reelwatch.api.session import CSRF_FIELD, CSRF_HEADER, csrf_token
from reelwatch.db.models import User
from reelwatch.failures import failure_cause
from reelwatch.web.assets import STATIC, static_url
from reelwatch.web.banners import page_banners
from reelwatch.web.views import event_details, event_words, failure_of, next_step, plain_words

NOTHING = "\u2013"  # an en dash, for a figure that is not known
HERE = Path(__file__).parent
VENDOR = STATIC / "vendor"

# Pages show one signed-in user's data: never kept by a browser or a proxy.
PAGE_HEADERS = {"Cache-Control": "no-store"}


def human_bytes(size: float | None) -> str:
    if size is None:
        return NOTHING
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GB"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return NOTHING
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return NOTHING
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def utc(moment: datetime | str | None) -> str:
    if moment is None:
        return NOTHING
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.removesuffix("Z"))
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def digest(html: str) -> str:
    """A short fingerprint of rendered HTML, to tell whether a page already shows it."""
    return hashlib.sha256(str(html).encode()).hexdigest()[:16]


def percent(value: float | None, digits: int = 0) -> str:
    return NOTHING if value is None else f"{value * 100:.{digits}f} %"


# Autoescape everything: Starlette's default only escapes names ending in .html.
templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=Undefined
    )
)
templates.env.filters.update(
    bytes=human_bytes,
    duration=human_duration,
    age=human_age,
    utc=utc,
    percent=percent,
    digest=digest,
)
templates.env.globals.update(
    CSRF_FIELD=CSRF_FIELD,
    CSRF_HEADER=CSRF_HEADER,
    failure_of=failure_of,
    event_words=event_words,
    event_details=event_details,
    plain_words=plain_words,
    next_step=next_step,
    static_url=static_url,
)
templates.env.filters["failure_cause"] = failure_cause  # input (the user's file) or service


def render(
    request: Request,
    svc: Services,
    name: str,
    context: Mapping[str, Any],
    *,
    user: User | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A full page: ``context`` plus what the layout needs."""
    with svc.db.read() as session:
        banners = page_banners(session, svc.settings)
    shared = {
        "user": user,
        "csrf_token": csrf_token(request),
        "environment": svc.settings.env,
        "banners": banners,
        "flashes": request.session.pop("flashes", []),
        "charts_available": (VENDOR / "uPlot.iife.min.js").exists(),
        "mailbox_available": svc.settings.env != "production",
    }
    return templates.TemplateResponse(
        request, name, {**shared, **context}, status_code=status_code, headers=PAGE_HEADERS
    )


def render_fragment(name: str, context: Mapping[str, Any]) -> str:
    """A partial template on its own, for live updates."""
    return templates.get_template(name).render(context)


def flash(request: Request, text: str) -> None:
    """A one-line message shown on the next page (after a redirect)."""
    request.session["flashes"] = [*request.session.get("flashes", []), text]
