"""Notices: maintenance windows and incidents, told to users before they act.

A maintenance window is scheduled ahead (``schedule_maintenance``, optionally mailing the
users active lately, once each); an incident is opened by hand or by the monitor when an
alert that users feel fires (``sync_auto_incidents``), and resolved with it. Both say
what an upload gets while they stand (``Notice.uploads``): ``automatic``, ``retrying``
or ``postponing``, the three behaviours the origin proposal names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from reelwatch.db.models import Notice, NoticeUpdate, User, Video
from reelwatch.notices.components import parse_components
from reelwatch.notify import messages, outbox

MAINTENANCE, INCIDENT = "maintenance", "incident"
AUTOMATIC, RETRYING, POSTPONING = "automatic", "retrying", "postponing"
UPLOAD_POLICIES = (AUTOMATIC, RETRYING, POSTPONING)
MANUAL = "manual"
UPCOMING_SHOWN = timedelta(days=7)

# The alert rules whose firing users feel, and what an automatic incident tells them.
AUTO_INCIDENTS = {
    "failure_ratio_high": "Processing is failing more than usual. Your uploads are saved; "
    "if one fails you will get an e-mail, and you can retry it once this notice is gone.",
    "no_live_worker": "Processing is stopped for now. Uploads are saved and will be "
    "processed as soon as it is back; you will get an e-mail with the outcome.",
    "queue_stalled": "Processing is stuck for now. Uploads are saved and will be processed "
    "as soon as it is back; you will get an e-mail with the outcome.",
}


class NoticeError(ValueError):
    """A notice that cannot be (a window that ends before it starts, say)."""


def schedule_maintenance(
    session: Session,
    *,
    starts_at: datetime,
    ends_at: datetime,
    message: str,
    uploads: str,
    by: str,
    now: datetime,
) -> Notice:
    _check_policy(uploads)
    if ends_at <= starts_at:
        raise NoticeError("a maintenance window must end after it starts")
    if ends_at <= now:
        raise NoticeError("this maintenance window is already over")
    return _add(session, MAINTENANCE, message, starts_at, ends_at, uploads, MANUAL, by, now)


def open_incident(
    session: Session,
    *,
    message: str,
    uploads: str = AUTOMATIC,
    by: str,
    now: datetime,
    source: str = MANUAL,
    components: str = "",
) -> Notice:
    """Open an incident affecting ``components`` (``database,storage``; empty or
    ``all``: the service as a whole)."""
    _check_policy(uploads)
    try:
        keys = parse_components(components)
    except ValueError as exc:
        raise NoticeError(str(exc)) from None
    notice = _add(session, INCIDENT, message, now, None, uploads, source, by, now)
    notice.components = ",".join(keys)
    return notice


def add_update(
    session: Session, notice_id: int, *, message: str, by: str, now: datetime
) -> NoticeUpdate:
    """Add a step to an open incident's timeline (what was found, what is being done)."""
    notice = session.get(Notice, notice_id)
    if notice is None or notice.kind != INCIDENT or notice.closed_at is not None:
        raise LookupError(f"no open incident {notice_id}")
    if not message.strip():
        raise NoticeError("an update needs a message for the users")
    update = NoticeUpdate(notice_id=notice_id, at=now, message=message.strip(), created_by=by)
    session.add(update)
    session.flush()
    return update


def updates_of(session: Session, notices: list[Notice]) -> dict[int, list[NoticeUpdate]]:
    """Each notice's updates, newest first, by notice id."""
    ids = [notice.id for notice in notices]
    timeline: dict[int, list[NoticeUpdate]] = {notice_id: [] for notice_id in ids}
    if ids:
        query = select(NoticeUpdate).where(NoticeUpdate.notice_id.in_(ids))
        for update in session.scalars(
            query.order_by(NoticeUpdate.at.desc(), NoticeUpdate.id.desc())
        ):
            timeline[update.notice_id].append(update)
    return timeline


def affected_components(notice: Notice) -> list[str]:
    """The component keys an incident names; empty: the service as a whole."""
    return [key for key in notice.components.split(",") if key]


def close_notice(session: Session, notice_id: int, now: datetime) -> Notice:
    """Cancel a maintenance window (or end it early), or resolve an incident."""
    notice = session.get(Notice, notice_id)
    if notice is None or notice.closed_at is not None:
        raise LookupError(f"no open notice {notice_id}")
    notice.closed_at = now
    return notice


def active_notices(session: Session, now: datetime) -> list[Notice]:
    query = select(Notice).where(
        Notice.closed_at.is_(None),
        Notice.starts_at <= now,
        or_(Notice.ends_at.is_(None), Notice.ends_at > now),
    )
    return list(session.scalars(query.order_by(Notice.starts_at, Notice.id)))


def upcoming_notices(session: Session, now: datetime) -> list[Notice]:
    """Maintenance announced for the next ``UPCOMING_SHOWN``."""
    query = select(Notice).where(
        Notice.closed_at.is_(None),
        Notice.starts_at > now,
        Notice.starts_at <= now + UPCOMING_SHOWN,
    )
    return list(session.scalars(query.order_by(Notice.starts_at, Notice.id)))


def past_incidents(session: Session, since: datetime) -> list[Notice]:
    query = select(Notice).where(
        Notice.kind == INCIDENT, Notice.closed_at.is_not(None), Notice.starts_at >= since
    )
    return list(session.scalars(query.order_by(Notice.starts_at.desc())))


def list_notices(session: Session, now: datetime) -> list[Notice]:
    """Every notice still standing or to come, for ``reelwatch maintenance list``."""
    query = select(Notice).where(
        Notice.closed_at.is_(None), or_(Notice.ends_at.is_(None), Notice.ends_at > now)
    )
    return list(session.scalars(query.order_by(Notice.starts_at, Notice.id)))


def notice_as_dict(notice: Notice, updates: list[NoticeUpdate] | None = None) -> dict[str, Any]:
    return {
        "id": notice.id,
        "kind": notice.kind,
        "message": notice.message,
        "starts_at": _iso(notice.starts_at),
        "ends_at": _iso(notice.ends_at),
        "uploads": notice.uploads,
        "source": notice.source,
        "closed_at": _iso(notice.closed_at),
        # Empty: the service as a whole.
        "components": affected_components(notice),
        "updates": [{"at": _iso(update.at), "message": update.message} for update in updates or []],
    }


def announce_maintenance(
    session: Session, notice: Notice, *, active_within: timedelta, public_url: str, now: datetime
) -> int:
    """Mail the window to every user who uploaded within ``active_within``, once each
    (the outbox key is per window and user); returns how many were queued."""
    recent_uploaders = select(Video.user_id).where(Video.created_at >= now - active_within)
    users = session.scalars(select(User).where(User.id.in_(recent_uploaders)))
    queued = 0
    for user in users:
        message = messages.maintenance_email(user, notice, public_url=public_url)
        queued += outbox.enqueue(session, message)
    return queued


def sync_auto_incidents(session: Session, firing: list[str], now: datetime) -> None:
    """Open an incident when a rule users feel starts firing; resolve it when it stops."""
    open_auto = {
        notice.source: notice
        for notice in session.scalars(
            select(Notice).where(
                Notice.kind == INCIDENT,
                Notice.closed_at.is_(None),
                Notice.source.in_(list(AUTO_INCIDENTS)),
            )
        )
    }
    for rule, message in AUTO_INCIDENTS.items():
        if rule in firing and rule not in open_auto:
            open_incident(session, message=message, by="monitor", now=now, source=rule)
        elif rule not in firing and rule in open_auto:
            open_auto[rule].closed_at = now


def _add(
    session: Session,
    kind: str,
    message: str,
    starts_at: datetime,
    ends_at: datetime | None,
    uploads: str,
    source: str,
    by: str,
    now: datetime,
) -> Notice:
    if not message.strip():
        raise NoticeError("a notice needs a message for the users")
    notice = Notice(
        kind=kind,
        message=message.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        uploads=uploads,
        source=source,
        created_by=by,
        created_at=now,
    )
    session.add(notice)
    session.flush()
    return notice


def _check_policy(uploads: str) -> None:
    if uploads not in UPLOAD_POLICIES:
        raise NoticeError(f"uploads must be one of {', '.join(UPLOAD_POLICIES)}, not {uploads!r}")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None
