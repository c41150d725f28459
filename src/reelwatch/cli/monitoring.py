"""Admin commands about the monitor: checks, alerts and their silences, customer activity."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from reelwatch.cli.client import Connection, request
from reelwatch.cli.common import console, err
from reelwatch.timewords import parse_span

app = typer.Typer()
alerts_app = typer.Typer(help="Admin: alert rules pending or firing, and silences.")
app.add_typer(alerts_app, name="alerts")

STATE_STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "dim"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1.5d``."""
    try:
        return parse_span(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def checks() -> None:
    """Admin: every check (database, storage, SMTP, ffmpeg, workers, nodes, probes)."""
    with Connection.from_environment().client() as client:
        found = request(client, "GET", "/api/v1/admin/checks")
    table = Table("check", "state", "since", "detail")
    for check in found["checks"]:
        style = STATE_STYLE.get(check["state"], "")
        table.add_row(
            check["name"], f"[{style}]{check['state']}[/]", check["since"], check["detail"]
        )
    console.print(table)


@app.command()
def activity() -> None:
    """Admin: per user, uploads, failures, retries and the last upload."""
    with Connection.from_environment().client() as client:
        found = request(client, "GET", "/api/v1/admin/activity")
    table = Table("user", "uploads", "failed", "retries", "last upload")
    for user in found["users"]:
        table.add_row(
            user["email"],
            str(user["uploads"]),
            str(user["failed"]),
            str(user["retries"]),
            user["last_seen"] or "-",
        )
    console.print(table)


@alerts_app.callback(invoke_without_command=True)
def list_alerts(ctx: typer.Context) -> None:
    """The rules pending or firing, and the silences in force."""
    if ctx.invoked_subcommand:
        return
    with Connection.from_environment().client() as client:
        found = request(client, "GET", "/api/v1/admin/alerts")
    table = Table("rule", "state", "severity", "since", "value", "silenced until")
    for alert in found["alerts"]:
        table.add_row(
            alert["rule"],
            alert["state"],
            alert["severity"],
            alert["since"],
            alert["value"],
            alert["silenced_until"] or "-",
        )
    console.print(table if found["alerts"] else "no alert is pending or firing")
    for silence in found["silences"]:
        console.print(
            f"silence {silence['id']}: {silence['rule']} until {silence['ends_at']} "
            f"by {silence['created_by']} {silence['comment']}".rstrip()
        )


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
