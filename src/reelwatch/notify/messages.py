"""The words of every notification: user e-mails from Jinja2 templates, admin alerts.

Messages are composed when they are enqueued, inside the transaction of the outcome
they report, so what is delivered later is exactly what was true then.
"""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from reelwatch.db.models import Notice, StatusSubscription, User, Video
from reelwatch.failures import INPUT, SERVICE, FailureKind, TaskFailure, failure_cause
from reelwatch.notify.outbox import ADMINS, ALERT, EMAIL, Message

PROCESSING_FAILURES = "processing_failures"
FAILURE_SUBJECT = "Video processing failed"  # then the cause: (input) or (service)

_templates = Environment(
    loader=PackageLoader("reelwatch.notify", "templates"),
    autoescape=select_autoescape(["html.j2"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def video_link(public_url: str, video: Video) -> str:
    """The video's web page: a reader who is signed out signs in and lands there."""
    return f"{public_url}/videos/{video.id}"


def ready_email(video: Video, user: User, *, run: int, public_url: str) -> Message:
    renditions = ", ".join(f"{r.name} ({r.width}x{r.height})" for r in video.renditions)
    return _email(
        "ready",
        video,
        user,
        key=_outcome_key(video, run),
        subject=f"Your video is ready: {video.title}",
        public_url=public_url,
        renditions=renditions or "-",
        duration=_duration(video.duration_s),
    )


def failed_email(
    video: Video, user: User, failure: TaskFailure, *, run: int, public_url: str
) -> Message:
    return _email(
        "failed",
        video,
        user,
        key=_outcome_key(video, run),
        subject=f"We could not process your video: {video.title}",
        public_url=public_url,
        explanation=failure.kind.gave_up_message,  # no automatic retry is coming
        retry_helps=failure.kind.retry_helps,
        code=failure.code.value,
        detail=failure.message,
    )


def delayed_email(
    video: Video, user: User, kind: FailureKind, next_at: datetime | None, *, public_url: str
) -> Message:
    """At most one per video (its key has no run number)."""
    return _email(
        "delayed",
        video,
        user,
        key=f"email:video:{video.id}:delayed",
        subject=f"Your video is saved; processing is delayed: {video.title}",
        public_url=public_url,
        explanation=kind.user_message,
        next_at=next_at.strftime("%Y-%m-%d %H:%M") if next_at else None,
    )


UPLOADS_EFFECT = {
    "automatic": "uploads are accepted and saved; they are processed when it ends, and you "
    "get the usual e-mail with the outcome.",
    "retrying": "uploads are refused; please upload again after it ends.",
    "postponing": "uploads are refused; if you try, we e-mail you once it is over so you "
    "can upload again.",
}


def maintenance_email(user: User, notice: Notice, *, public_url: str) -> Message:
    """The upfront notice of a window, once per window and user."""
    ends_at = notice.ends_at or notice.starts_at
    text, html = _render(
        "maintenance",
        public_url=public_url,
        status_link=f"{public_url}/status",
        starts_at=f"{notice.starts_at:%Y-%m-%d %H:%M}",
        ends_at=f"{ends_at:%Y-%m-%d %H:%M}",
        message=notice.message,
        uploads_effect=UPLOADS_EFFECT[notice.uploads],
    )
    return Message(
        key=f"email:maintenance:{notice.id}:user:{user.id}",
        channel=EMAIL,
        recipient=user.email,
        subject=f"Planned maintenance on {notice.starts_at:%Y-%m-%d %H:%M} UTC",
        body_text=text,
        body_html=html,
    )


def back_email(subscription: StatusSubscription, *, public_url: str) -> Message:
    """The "it is back" e-mail, once per subscription."""
    text, html = _render("back", public_url=public_url)
    return Message(
        key=f"email:status:back:{subscription.id}",
        channel=EMAIL,
        recipient=subscription.email,
        subject="reelwatch is back",
        body_text=text,
        body_html=html,
    )


def failure_alert(
    video: Video, user: User, failure: TaskFailure, *, run: int, public_url: str
) -> Message:
    """One line of the processing-failures digest that admins receive, with a link to
    the video's page (its timeline, and the retry button when a retry can help)."""
    return Message(
        key=f"alert:video:{video.id}:run{run}:failed",
        channel=ALERT,
        recipient=ADMINS,
        subject=f"{FAILURE_SUBJECT} ({failure_cause(failure.code.value)})",
        body_text=f"{video.id} ({user.email}, {video.filename!r}): {failure.code.value}: "
        f"{failure.message} - {failure.kind.admin_hint} {video_link(public_url, video)}",
        group_key=PROCESSING_FAILURES,
        video_id=video.id,
    )


def failure_digest(members: list[tuple[str, str]], *, environment: str) -> tuple[str, str]:
    """Title and body of one grouped alert for a burst of failures, from its members'
    (subject, line): the service's failures first, since only they need the admins."""
    by_cause = {
        cause: [line for subject, line in members if _cause_of(subject) == cause]
        for cause in (SERVICE, INPUT)
    }
    count = len(members)
    counts = f"{len(by_cause[SERVICE])} by the service, {len(by_cause[INPUT])} by their input"
    title = (
        f"[reelwatch {environment}] {count} video{'s' if count != 1 else ''} failed "
        f"processing: {counts}"
    )
    lines = by_cause[SERVICE] + by_cause[INPUT]
    shown = lines[:20]
    more = f"\n... and {count - len(shown)} more" if count > len(shown) else ""
    body = (
        "\n".join(f"- {line}" for line in shown)
        + more
        + (
            "\n\nWhat to do: failures by their input (the uploaded file) need nothing from "
            "you; for the service's, see the failure events (reelwatch events ID) and retry "
            "with reelwatch retry ID."
        )
    )
    return title, body


def _cause_of(subject: str) -> str:
    """The cause a failure alert's subject names; the service's if it names none (a
    message queued by an older release)."""
    return INPUT if subject.endswith(f"({INPUT})") else SERVICE


def _outcome_key(video: Video, run: int) -> str:
    # Ready and failed share the key: one outcome e-mail per run, whatever happens.
    return f"email:video:{video.id}:outcome:run{run}"


def _email(
    template: str,
    video: Video,
    user: User,
    *,
    key: str,
    subject: str,
    public_url: str,
    **context: object,
) -> Message:
    text, html = _render(
        template,
        title=video.title,
        link=video_link(public_url, video),
        public_url=public_url,
        **context,
    )
    return Message(
        key=key,
        channel=EMAIL,
        recipient=user.email,
        subject=subject,
        body_text=text,
        body_html=html,
        video_id=video.id,
    )


def _render(template: str, **values: object) -> tuple[str, str]:
    """The plain text and HTML bodies of ``template``."""
    text = _templates.get_template(f"{template}.txt.j2").render(values)
    return text, _templates.get_template(f"{template}.html.j2").render(values)


def _duration(seconds: float | None) -> str:
    if not seconds:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"
