"""The admin actions page: silence alerts, drain workers, retry by error code, open and
resolve incidents, schedule and cancel maintenance.

Every action is a POST form carrying the session's CSRF token, for admins only (a user
gets the 403 page), and calls the same functions as the API and the CLI
(``insights.silences``, ``engine.worker``, ``videos.service``, ``notices.service``),
then comes back to this page with a flash saying what happened.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from reelwatch.api.deps import ServicesDep
from reelwatch.api.validation import PathId, RowId
from reelwatch.database import utcnow
from reelwatch.db.models import Notice
from reelwatch.engine.queue import release_held_tasks
from reelwatch.engine.worker import request_drain
from reelwatch.failures import CATALOG, FailureCode
from reelwatch.insights.overview import build_overview
from reelwatch.insights.silences import add_silence, end_silence
from reelwatch.notices.service import (
    INCIDENT,
    MAINTENANCE,
    UPLOAD_POLICIES,
    close_notice,
    list_notices,
    open_incident,
    schedule_maintenance,
)
from reelwatch.timewords import parse_moment, parse_span
from reelwatch.videos import service
from reelwatch.videos.service import NotRetryable
from reelwatch.web.deps import AdminUserDep, FormDep
from reelwatch.web.templating import flash, render

router = APIRouter(prefix="/admin/actions", include_in_schema=False)

PAGE = "/admin/actions"
MAX_SILENCE = timedelta(days=366)  # as the API's SilenceRequest
MAX_RULE_LENGTH = 200  # Silence.rule's column
MAX_TEXT_LENGTH = 2000  # a notice's message, a silence's comment


def back(request: Request, message: str) -> RedirectResponse:
    flash(request, message)
    return RedirectResponse(PAGE, status_code=303)


def field(form: FormData, name: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """A text field, trimmed; longer than ``limit`` is refused by the caller's message."""
    value = str(form.get(name, "")).strip()
    if len(value) > limit:
        raise ValueError(f"{name}: at most {limit} characters")
    return value


@router.get("")
def actions_page(request: Request, svc: ServicesDep, user: AdminUserDep) -> HTMLResponse:
    now = utcnow()
    with svc.db.read() as session:
        overview = build_overview(session, svc.settings)
        notices = list_notices(session, now)
    context: dict[str, Any] = {
        "overview": overview,
        "incidents": [n for n in notices if n.kind == INCIDENT],
        "maintenance": [n for n in notices if n.kind == MAINTENANCE],
        "policies": UPLOAD_POLICIES,
        "codes": [(code.value, CATALOG[code].retry_helps) for code in FailureCode],
    }
    return render(request, svc, "admin/actions.html.j2", context, user=user)


@router.post("/silences")
def silence(
    request: Request, svc: ServicesDep, user: AdminUserDep, form: FormDep
) -> RedirectResponse:
    try:
        rule = field(form, "rule", MAX_RULE_LENGTH)
        span = parse_span(field(form, "for", 20))
        comment = field(form, "comment")
        if not rule:
            raise ValueError("name the rule (or a pattern such as check:worker:*)")
        if not timedelta(seconds=1) <= span <= MAX_SILENCE:
            raise ValueError("a silence lasts from a second to 366 days")
    except ValueError as exc:
        return back(request, f"Not silenced: {exc}.")
    with svc.db.write() as session:
        add_silence(session, rule, span, by=user.email, comment=comment, now=utcnow())
    return back(request, f"Silenced {rule} for {form.get('for')}.")


@router.post("/silences/{silence_id}/end")
def unsilence(
    request: Request, svc: ServicesDep, user: AdminUserDep, form: FormDep, silence_id: RowId
) -> RedirectResponse:
    with svc.db.write() as session:
        ended = end_silence(session, silence_id, utcnow())
    if not ended:
        return back(request, f"Silence {silence_id} had already ended.")
    return back(request, f"Silence {silence_id} ended: its alerts are sent again.")


@router.post("/workers/{worker_id}/drain")
def drain(
    request: Request, svc: ServicesDep, user: AdminUserDep, form: FormDep, worker_id: PathId
) -> RedirectResponse:
    if not request_drain(svc.db, worker_id):
        return back(request, f"Not drained: no running worker {worker_id}.")
    return back(request, f"Draining {worker_id}: it finishes its task, takes no more, and exits.")


@router.post("/retry")
def retry_by_code(
    request: Request, svc: ServicesDep, user: AdminUserDep, form: FormDep
) -> RedirectResponse:
    code = str(form.get("code", ""))
    if code not in set(FailureCode):
        return back(request, "Not retried: choose an error code from the list.")
    try:
        restarted = service.retry_failed_with_code(svc.db, user, code)
    except NotRetryable as exc:
        return back(request, f"Not retried: {exc}.")
    plural = "video" if len(restarted) == 1 else "videos"
    return back(request, f"Retry started for {len(restarted)} {plural} that failed with {code}.")


@router.post("/incidents")
def incident(
    request: Request, svc: ServicesDep, user: AdminUserDep, form: FormDep
) -> RedirectResponse:
    try:
        message = field(form, "message")
        with svc.db.write() as session:
            uploads = field(form, "uploads")
            notice = open_incident(
                session, message=message, uploads=uploads, by=user.email, now=utcnow()
            )
            notice_id = notice.id
    except ValueError as exc:  # NoticeError too
        return back(request, f"No incident opened: {exc}.")
    return back(request, f"Incident {notice_id} open: every page shows it until it is resolved.")


@router.post("/maintenance")
def maintenance(
    request: Request, svc: ServicesDep, user: AdminUserDep, form: FormDep
) -> RedirectResponse:
    now = utcnow()
    try:
        starts_at = parse_moment(field(form, "start", 64), now)
        ends_at = parse_moment(field(form, "end", 64), now)
        with svc.db.write() as session:
            notice = schedule_maintenance(
                session,
                starts_at=starts_at,
                ends_at=ends_at,
                message=field(form, "message"),
                uploads=field(form, "uploads"),
                by=user.email,
                now=now,
            )
            notice_id = notice.id
    except ValueError as exc:  # NoticeError too
        return back(request, f"No maintenance scheduled: {exc}.")
    window = f"{starts_at:%Y-%m-%d %H:%M} to {ends_at:%Y-%m-%d %H:%M} UTC"
    return back(request, f"Maintenance {notice_id} scheduled, {window}.")


@router.post("/notices/{notice_id}/close")
def close(
    request: Request, svc: ServicesDep, user: AdminUserDep, form: FormDep, notice_id: RowId
) -> RedirectResponse:
    """Resolve an incident, or cancel (end now) a maintenance window: the uploads it
    held are processed at once, as ``reelwatch maintenance cancel`` does."""
    now = utcnow()
    with svc.db.write() as session:
        try:
            notice = close_notice(session, notice_id, now)
        except LookupError:
            return back(request, f"Notice {notice_id} was already closed.")
        released = released_uploads(session, notice, now)
    if notice.kind == INCIDENT:
        return back(request, f"Incident {notice_id} resolved: its banner is gone.")
    return back(request, f"Maintenance {notice_id} cancelled; {released} held uploads released.")


def released_uploads(session: Session, notice: Notice, now: datetime) -> int:
    if notice.kind != MAINTENANCE or notice.ends_at is None:
        return 0
    return release_held_tasks(session, notice.ends_at, now)
