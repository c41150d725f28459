"""Operator commands for what users are told upfront: maintenance windows and incidents.

They work directly on this host's database, like ``users`` and ``db``. Times are ISO 8601
(UTC unless an offset is given), ``now`` or relative (``+2h``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from reelwatch.cli.common import (
    OPERATIONS_PANEL,
    JsonOption,
    console,
    err,
    literal,
    operator_database,
    printed_plainly,
    show_records,
)
from reelwatch.database import utcnow
from reelwatch.db.models import Notice
from reelwatch.engine.queue import release_held_tasks
from reelwatch.notices.components import COMPONENT_KEYS
from reelwatch.notices.service import (
    AUTOMATIC,
    INCIDENT,
    MAINTENANCE,
    NoticeError,
    add_update,
    affected_components,
    announce_maintenance,
    close_notice,
    list_notices,
    open_incident,
    schedule_maintenance,
)
from reelwatch.timewords import parse_moment

app = typer.Typer()
maintenance_app = typer.Typer(help="Maintenance windows, announced upfront.", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents shown to users.", no_args_is_help=True)
app.add_typer(maintenance_app, name="maintenance", rich_help_panel=OPERATIONS_PANEL)
app.add_typer(incidents_app, name="incidents", rich_help_panel=OPERATIONS_PANEL)

UploadsOption = Annotated[
    str,
    typer.Option(
        help="What uploads get meanwhile: automatic (saved, processed after), "
        "retrying (refused: try again later) or postponing (refused: mailed when back)."
    ),
]


@maintenance_app.command("schedule")
def maintenance_schedule(
    start: Annotated[str, typer.Option(help="ISO 8601 (UTC), 'now' or '+2h'.")],
    end: Annotated[str, typer.Option(help="ISO 8601 (UTC), or relative to now: '+3h'.")],
    message: Annotated[str, typer.Option(help="What users read, on the site and by mail.")],
    uploads: UploadsOption = AUTOMATIC,
    notify: Annotated[
        bool, typer.Option("--notify", help="Mail the users active lately, once each.")
    ] = False,
) -> None:
    """Announce a maintenance window."""
    now = utcnow()
    try:
        starts_at, ends_at = parse_moment(start, now), parse_moment(end, now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with operator_database() as (settings, db), db.write() as session:
        try:
            notice = schedule_maintenance(
                session,
                starts_at=starts_at,
                ends_at=ends_at,
                message=message,
                uploads=uploads,
                by="operator",
                now=now,
            )
        except NoticeError as exc:
            err.print(f"[red]error:[/] {literal(exc)}")
            raise typer.Exit(1) from None
        mailed = 0
        if notify:
            mailed = announce_maintenance(
                session,
                notice,
                active_within=timedelta(days=settings.notify_active_days),
                public_url=settings.resolved_public_url,
                now=now,
            )
    console.print(
        f"maintenance {notice.id}: {starts_at:%Y-%m-%d %H:%M} to {ends_at:%Y-%m-%d %H:%M} UTC, "
        f"uploads {uploads}" + (f"; {mailed} users will be mailed" if notify else "")
    )


@maintenance_app.command("list")
def maintenance_list(as_json: JsonOption = False) -> None:
    """Maintenance windows and incidents still standing or to come."""
    with operator_database() as (_, db), db.read() as session:
        _print_notices(list_notices(session, utcnow()), as_json)


@maintenance_app.command("cancel")
def maintenance_cancel(notice_id: int) -> None:
    """Cancel a maintenance window, or end it now; uploads it held are processed at once."""
    now = utcnow()
    with operator_database() as (_, db), db.write() as session:
        notice = _close(session, notice_id, now, MAINTENANCE)
        released = release_held_tasks(session, notice.ends_at, now) if notice.ends_at else 0
    console.print(f"maintenance {notice_id} cancelled; {released} held uploads released")


@incidents_app.command("open")
def incidents_open(
    message: Annotated[str, typer.Option(help="What users read on the site.")],
    uploads: UploadsOption = AUTOMATIC,
    components: Annotated[
        str,
        typer.Option(
            help=f"The components affected, comma-separated ({', '.join(COMPONENT_KEYS)}); "
            "'all' (the default): the service as a whole."
        ),
    ] = "all",
) -> None:
    """Tell users something is wrong, until it is resolved."""
    now = utcnow()
    with operator_database() as (_, db), db.write() as session:
        try:
            notice = open_incident(
                session,
                message=message,
                uploads=uploads,
                by="operator",
                now=now,
                components=components,
            )
        except NoticeError as exc:
            err.print(f"[red]error:[/] {literal(exc)}")
            raise typer.Exit(1) from None
    affected = notice.components.replace(",", ", ") or "the service as a whole"
    console.print(f"incident {notice.id} open, affecting {affected}")


@incidents_app.command("update")
def incidents_update(
    notice_id: int,
    message: Annotated[str, typer.Option(help="What users read under the incident.")],
) -> None:
    """Tell users how an open incident goes: shown newest first under it, with the time."""
    with operator_database() as (_, db), db.write() as session:
        try:
            add_update(session, notice_id, message=message, by="operator", now=utcnow())
        except (LookupError, NoticeError) as exc:
            err.print(f"[red]error:[/] {literal(exc)}")
            raise typer.Exit(1) from None
    console.print(f"incident {notice_id} updated")


@incidents_app.command("list")
def incidents_list(as_json: JsonOption = False) -> None:
    """Open incidents (and maintenance windows)."""
    maintenance_list(as_json)


@incidents_app.command("resolve")
def incidents_resolve(notice_id: int) -> None:
    """Resolve an incident: its banner goes away."""
    with operator_database() as (_, db), db.write() as session:
        _close(session, notice_id, utcnow(), INCIDENT)
    console.print(f"incident {notice_id} resolved")


def _close(session: Session, notice_id: int, now: datetime, kind: str) -> Notice:
    notice = session.get(Notice, notice_id)
    if notice is None or notice.kind != kind:
        err.print(f"[red]error:[/] no {kind} {notice_id}")
        raise typer.Exit(1)
    try:
        return close_notice(session, notice_id, now)
    except LookupError as exc:
        err.print(f"[red]error:[/] {literal(exc)}")
        raise typer.Exit(1) from None


def _print_notices(notices: list[Notice], as_json: bool) -> None:
    data = [_notice_as_dict(notice) for notice in notices]
    if not notices:
        if not printed_plainly(data, as_json, list):
            console.print("no notice is standing or scheduled")
        return
    rows = [
        (
            notice.id,
            notice.kind,
            f"{notice.starts_at:%Y-%m-%d %H:%M}",
            f"{notice.ends_at:%Y-%m-%d %H:%M}" if notice.ends_at else "until resolved",
            notice.uploads,
            notice.source,
            notice.components.replace(",", ", ") or "all",
            notice.message,
        )
        for notice in notices
    ]
    headers = ("id", "kind", "from", "to", "uploads", "source", "components", "message")
    show_records(data, as_json, rows, headers)


def _notice_as_dict(notice: Notice) -> dict[str, object]:
    return {
        "id": notice.id,
        "kind": notice.kind,
        "starts_at": notice.starts_at.isoformat(),
        "ends_at": notice.ends_at.isoformat() if notice.ends_at else None,
        "uploads": notice.uploads,
        "source": notice.source,
        "components": affected_components(notice),
        "message": notice.message,
    }
