"""Operator commands on this host's data: gc, recover, backup, restore, doctor.

Like ``db`` and ``users`` they work directly on the database and media store of the host
they run on, with the server's configuration.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reelwatch.cli.common import (
    OPERATIONS_PANEL,
    JsonOption,
    console,
    err,
    literal,
    operator_database,
    printed_plainly,
    settings_or_exit,
)
from reelwatch.database import utcnow
from reelwatch.operations.backup import BackupError, backup, restore
from reelwatch.operations.doctor import examine
from reelwatch.operations.gc import (
    collect,
    find_garbage,
    find_unrecorded_uploads,
    purge_expired_rows,
)
from reelwatch.operations.recover import OUTCOMES, candidates, recover
from reelwatch.storage import open_store
from reelwatch.videos.pipeline import register_video_workflow

app = typer.Typer()

STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "dim"}


@app.command(rich_help_panel=OPERATIONS_PANEL)
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
) -> None:
    """Remove what no video needs: orphan folders, temporary files, expired videos."""
    with operator_database() as (settings, db):
        store = open_store(settings)
        days = settings.orphan_retention_days
        for item in find_unrecorded_uploads(db, store, now=utcnow(), orphan_retention_days=days):
            console.print(f"[yellow]kept[/] {literal(item.path)}  [dim]{literal(item.reason)}[/]")
        garbage = find_garbage(
            db,
            store,
            now=utcnow(),
            retention_days=settings.retention_days,
            orphan_retention_days=days,
        )
        for item in garbage:
            console.print(
                f"{literal(item.path)}  [dim]{item.size_bytes / 1e6:.1f} MB, "
                f"{literal(item.reason)}[/]"
            )
        if dry_run:
            console.print(f"{len(garbage)} items would be removed (dry run)")
            return
        freed = collect(db, store, garbage)
        rows = purge_expired_rows(db, utcnow())
    console.print(f"removed {len(garbage)} items, {freed / 1e6:.1f} MB freed")
    console.print(f"deleted {rows} expired sessions and throttle counters")


@app.command("recover", rich_help_panel=OPERATIONS_PANEL)
def recover_command(
    video_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Only these videos.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, change nothing.")] = False,
) -> None:
    """Re-create the video rows a database lost from the uploads' manifests, and process
    the videos (every stored upload without a row, or the IDs given)."""
    with operator_database() as (settings, db):
        store = open_store(settings)
        register_video_workflow(settings, store)  # whose spec and observer recover uses
        recoveries = [
            recover(db, store, video_id, dry_run=dry_run)
            for video_id in video_ids or candidates(db, store)
        ]
    for item in recoveries:
        detail = f": {literal(item.detail)}" if item.detail else ""
        console.print(
            f"{literal(item.video_id)}  {literal(item.owner)}  {literal(item.filename)}  "
            f"[{'green' if item.ok else 'red'}]{item.done}[/]{detail}"
        )
    counts = Counter(item.done for item in recoveries)
    summary = ", ".join(f"{counts[done]} {done}" for done in OUTCOMES if counts[done])
    console.print(summary or "nothing to recover")
    if not all(item.ok for item in recoveries):
        raise typer.Exit(1)


@app.command("backup", rich_help_panel=OPERATIONS_PANEL)
def backup_command(destination: Path) -> None:
    """Back up the database and the media into DESTINATION (a new folder)."""
    with operator_database() as (settings, _):
        try:
            manifest = backup(settings, destination)
        except BackupError as exc:
            err.print(f"[red]error:[/] {literal(exc)}")
            raise typer.Exit(1) from None
    console.print(
        f"backed up {manifest['videos']} videos ({manifest['media_bytes'] / 1e6:.1f} MB of "
        f"media) and the database to {destination}"
    )


@app.command("restore", rich_help_panel=OPERATIONS_PANEL)
def restore_command(
    source: Path,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that already has videos.")
    ] = False,
) -> None:
    """Restore a backup into this host's database and media store, and verify it."""
    settings = settings_or_exit()
    try:
        result = restore(settings, source, force=force)
    except BackupError as exc:
        err.print(f"[red]error:[/] {literal(exc)}")
        raise typer.Exit(1) from None
    console.print(f"restored {result.videos} videos")
    for video_id in result.missing:
        err.print(f"[red]missing original:[/] {video_id}")
    for video_id in result.corrupted:
        err.print(f"[red]original does not match its upload checksum:[/] {video_id}")
    if not result.ok:
        raise typer.Exit(1)
    console.print("every original matches the checksum taken at upload")


@app.command(rich_help_panel=OPERATIONS_PANEL)
def doctor(as_json: JsonOption = False) -> None:
    """Check this host: database and schema, storage, SMTP, ffmpeg, alerts, garbage."""
    findings = examine(settings_or_exit())
    critical = any(f.result.state == "critical" for f in findings)
    data = [
        {
            "check": f.name,
            "state": f.result.state,
            "detail": f.result.detail,
            "fix": f.fix if f.result.state in ("warning", "critical") else "",
        }
        for f in findings
    ]
    rows = [(d["check"], d["state"], d["detail"], d["fix"]) for d in data]
    if printed_plainly(data, as_json, lambda: rows):
        raise typer.Exit(1 if critical else 0)
    table = Table("check", "state", "detail", "what to do")
    for finding in findings:
        state = finding.result.state
        fix = finding.fix if state in ("warning", "critical") else ""
        table.add_row(
            finding.name, f"[{STYLE[state]}]{state}[/]", literal(finding.result.detail), fix
        )
    console.print(table)
    if any(f.result.state == "critical" for f in findings):
        raise typer.Exit(1)
