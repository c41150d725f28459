"""The pages people read: sign-in, upload, their videos, one video, the mailbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from reelwatch.accounts import user_for_password, user_for_token
from reelwatch.api.deps import Services, ServicesDep
from reelwatch.api.session import session_user, sign_in, sign_out
from reelwatch.api.throttles import check_sign_in, retry_message, signed_in
from reelwatch.api.validation import PathId
from reelwatch.db.models import User
from reelwatch.inputs import MAX_TITLE_LENGTH, InvalidInput
from reelwatch.videos import service
from reelwatch.videos.service import NotRetryable, VideoNotFound
from reelwatch.videos.status import VideoStatus
from reelwatch.web.deps import FormDep, PageError, PageUserDep, safe_next
from reelwatch.web.mailbox import open_mail, visible_mail
from reelwatch.web.templating import flash, render
from reelwatch.web.views import owner_emails, player_settings, status_explanation, video_detail

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 30
NOT_YOURS = "There is no such video, or it is not yours."


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@router.get("/")
def home(request: Request, svc: ServicesDep) -> RedirectResponse:
    return see_other("/videos" if session_user(request, svc.db) else "/login")


@router.get("/login")
def login_page(
    request: Request,
    svc: ServicesDep,
    next_path: Annotated[str, Query(alias="next", max_length=2048)] = "/videos",
) -> Response:
    if session_user(request, svc.db):
        return see_other(safe_next(next_path))
    context = {"next": safe_next(next_path), "error": None}
    return render(request, svc, "login.html.j2", context)


@router.post("/login")
def login(request: Request, svc: ServicesDep, form: FormDep) -> Response:
    next_path = safe_next(form.get("next"))
    context = {"next": next_path, "email": form.get("email", "")}
    account = password_account(form)
    # Before any password is hashed: a refused guess costs one small write, no scrypt.
    retry_after = check_sign_in(svc, request, account)
    if retry_after is not None:
        error = retry_message("Too many failed sign-ins", retry_after) + "."
        page = render(request, svc, "login.html.j2", {**context, "error": error}, status_code=429)
        page.headers["Retry-After"] = str(retry_after)
        return page
    user = authenticate(svc, form)
    if user is None:
        error = "That did not match an account: check the token, or the email and password."
        return render(request, svc, "login.html.j2", {**context, "error": error}, status_code=401)
    signed_in(svc, request, account)
    sign_in(request, svc.db, user)
    return see_other(next_path)


def password_account(form: FormData) -> str | None:
    """The email a password sign-in is for (None for a token sign-in)."""
    email = str(form.get("email", "")).strip()
    return email if email and not str(form.get("token", "")).strip() else None


def authenticate(svc: Services, form: FormData) -> User | None:
    token, email, password = (str(form.get(k, "")).strip() for k in ("token", "email", "password"))
    with svc.db.read() as session:
        if token:
            return user_for_token(session, token)
        if email and password:
            return user_for_password(session, email, password)
    return None


@router.post("/logout")
def logout(request: Request, svc: ServicesDep, form: FormDep) -> RedirectResponse:
    sign_out(request, svc.db)
    return see_other("/login")


@router.get("/upload")
def upload_page(request: Request, svc: ServicesDep, user: PageUserDep) -> HTMLResponse:
    limits = {
        "max_bytes": svc.settings.max_upload_bytes,
        "max_mb": svc.settings.max_upload_mb,
        "max_title": MAX_TITLE_LENGTH,
    }
    return render(request, svc, "upload.html.j2", limits, user=user)


@router.get("/videos")
def videos_page(
    request: Request,
    svc: ServicesDep,
    user: PageUserDep,
    status: VideoStatus | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    with svc.db.read() as session:
        try:
            page = service.list_videos(session, user, status=status, cursor=cursor, limit=PAGE_SIZE)
        except ValueError:
            raise PageError(400, "That page link is broken; start from the first page.") from None
        owners = owner_emails(session, page.videos) if user.is_admin else {}
    context = {
        "videos": page.videos,
        "next_cursor": page.next_cursor,
        "status": status,
        "statuses": list(VideoStatus),
        "owners": owners,
        # Only the unfiltered first page takes in new uploads as they appear.
        "live_insert": status is None and cursor is None,
    }
    return render(request, svc, "videos.html.j2", context, user=user)


@router.get("/videos/{video_id}")
def video_page(request: Request, svc: ServicesDep, user: PageUserDep, video_id: PathId) -> Response:
    with svc.db.read() as session:
        detail = video_detail(session, user, video_id)
    context = {
        **detail.context(),
        "explanation": status_explanation(detail.video.status),
        "max_title": MAX_TITLE_LENGTH,
        **player_settings(svc.settings),
    }
    return render(request, svc, "video.html.j2", context, user=user)


@router.post("/videos/{video_id}/retry")
def retry_video(
    request: Request, svc: ServicesDep, user: PageUserDep, form: FormDep, video_id: PathId
) -> RedirectResponse:
    with svc.db.read() as session:
        video_detail(session, user, video_id)  # 404 page for a video that is not theirs
    try:
        service.retry_video(svc.db, user, video_id)
        flash(request, "Retry started: the failed steps run again.")
    except NotRetryable as exc:
        flash(request, f"Not retried: {exc}.")
    return see_other(f"/videos/{video_id}")


@router.post("/videos/{video_id}/title")
def rename_video(
    request: Request, svc: ServicesDep, user: PageUserDep, form: FormDep, video_id: PathId
) -> RedirectResponse:
    try:
        video = service.rename_video(svc.db, user, video_id, str(form.get("title", "")))
    except VideoNotFound:
        raise PageError(404, NOT_YOURS) from None
    except InvalidInput as exc:
        flash(request, f"Not renamed: {exc}.")
    else:
        flash(request, f"Renamed to \u201c{video.title}\u201d.")
    return see_other(f"/videos/{video_id}")


@router.get("/videos/{video_id}/delete")
def confirm_delete(
    request: Request, svc: ServicesDep, user: PageUserDep, video_id: PathId
) -> HTMLResponse:
    """The confirmation step: deleting cannot be undone, so it is asked on a page of its
    own, which works without JavaScript too."""
    with svc.db.read() as session:
        video = video_detail(session, user, video_id).video
    return render(request, svc, "delete.html.j2", {"video": video}, user=user)


@router.post("/videos/{video_id}/delete")
def delete_video(
    request: Request, svc: ServicesDep, user: PageUserDep, form: FormDep, video_id: PathId
) -> RedirectResponse:
    try:
        with svc.db.read() as session:
            title = service.get_video(session, user, video_id).title
        service.delete_video(svc.db, svc.store, user, video_id)
    except VideoNotFound:
        raise PageError(404, NOT_YOURS) from None
    flash(request, f"Deleted \u201c{title}\u201d and its files.")
    return see_other("/videos")


@router.get("/mail")
def mailbox_page(request: Request, svc: ServicesDep, user: PageUserDep) -> HTMLResponse:
    require_mailbox(svc)
    mails = visible_mail(svc.settings.mail_folder, user)
    context = {"mails": mails, "folder": svc.settings.mail_folder}
    return render(request, svc, "mailbox.html.j2", context, user=user)


@router.get("/mail/{mail_id}")
def mail_page(
    request: Request, svc: ServicesDep, user: PageUserDep, mail_id: PathId
) -> HTMLResponse:
    require_mailbox(svc)
    opened = open_mail(svc.settings.mail_folder, user, mail_id)
    if opened is None:
        raise PageError(404, "There is no such e-mail, or it was not sent to you.")
    return render(request, svc, "mail.html.j2", {"mail": opened}, user=user)


def require_mailbox(svc: Services) -> None:
    if svc.settings.env == "production":
        raise PageError(404, "Production sends real e-mail; there is no local mailbox.")
