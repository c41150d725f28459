"""Admin commands about the monitor: checks, alerts and their silences, customer activity."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.text import Text

from reelwatch.cli.client import Connection, request
from reelwatch.cli.common import (
    ADMIN_PANEL,
    JsonOption,
    console,
    err,
    plain_cell,
    printed_plainly,
    show_records,
)
from reelwatch.timewords import parse_span

app = typer.Typer()
alerts_app = typer.Typer(help="Admin: alert rules pending or firing, and silences.")
app.add_typer(alerts_app, name="alerts", rich_help_panel=ADMIN_PANEL)

STATE_STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "dim"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1.5d``."""
    try:
        return parse_span(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command(rich_help_panel=ADMIN_PANEL)
def checks(as_json: JsonOption = False) -> None:
    """Admin: every check (database, storage, SMTP, ffmpeg, workers, nodes, probes)."""
    with Connection.from_environment().client() as client:
        found = request(client, "GET", "/api/v1/admin/checks", raw=True)["checks"]
    rows = [(c["name"], c["state"], c["since"], c["detail"]) for c in found]
    show_records(found, as_json, rows, ("check", "state", "since", "detail"), styles=STATE_STYLE)


@app.command(rich_help_panel=ADMIN_PANEL)
def activity(as_json: JsonOption = False) -> None:
    """Admin: per user, uploads, failures, retries and the last upload."""
    with Connection.from_environment().client() as client:
        users = request(client, "GET", "/api/v1/admin/activity", raw=True)["users"]
    rows = [
        (user["email"], user["uploads"], user["failed"], user["retries"], user["last_seen"])
        for user in users
    ]
    show_records(users, as_json, rows, ("user", "uploads", "failed", "retries", "last upload"))


@alerts_app.callback(invoke_without_command=True)
def list_alerts(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The rules pending or firing, and the silences in force."""
    if ctx.invoked_subcommand:
        return
    with Connection.from_environment().client() as client:
        found = request(client, "GET", "/api/v1/admin/alerts", raw=True)
    alerts = [
        ("alert", a["rule"], a["state"], a["severity"], a["since"], a["value"], a["silenced_until"])
        for a in found["alerts"]
    ]
    silences = [
        ("silence", s["id"], s["rule"], s["ends_at"], s["created_by"], s["comment"])
        for s in found["silences"]
    ]
    if printed_plainly(found, as_json, lambda: alerts + silences):
        return
    headers = ("rule", "state", "severity", "since", "value", "silenced until")
    if alerts:
        show_records(found, False, [row[1:] for row in alerts], headers)
    else:
        console.print("no alert is pending or firing")
    for _, number, rule, ends_at, by, comment in silences:
        line = f"silence {number}: {rule} until {ends_at} by {by} {comment}".rstrip()
        console.print(Text(plain_cell(line)))


@alerts_app.command("silence")
def silence(
    rule: Annotated[str, typer.Argument(help="a rule, or a pattern such as 'check:worker:*'")],
    duration: Annotated[str, typer.Option("--for", help="how long: 30m, 2h, 1d")] = "1h",
    comment: Annotated[str, typer.Option(help="why, for the other admins")] = "",
) -> None:
    """Hear nothing from RULE for a while (it still shows, as silenced)."""
    minutes = parse_duration(duration).total_seconds() / 60
    with Connection.from_environment().client() as client:
        made = request(
            client,
            "POST",
            "/api/v1/admin/silences",
            json={"rule": rule, "minutes": minutes, "comment": comment},
        )
    console.print(f"silence {made['id']}: {made['rule']} is silent until {made['ends_at']}")


@alerts_app.command("unsilence")
def unsilence(silence_id: int) -> None:
    """End a silence now."""
    with Connection.from_environment().client() as client:
        request(client, "DELETE", f"/api/v1/admin/silences/{silence_id}")
    err.print(f"silence {silence_id} ended")
