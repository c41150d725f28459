"""What every command module shares: the consoles and loading the settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from reelwatch.config import ConfigError, Settings, load_settings
from reelwatch.db.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.runtime.permissions import open_to_others

console = Console()
err = Console(stderr=True)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the one-line configuration error; warns when the
    home folder is open to other users."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    exposure = open_to_others(settings.home)
    if exposure:
        err.print(f"[yellow]warning:[/] {escape(exposure)}", highlight=False, soft_wrap=True)
    return settings


@contextmanager
def operator_database() -> Iterator[tuple[Settings, Database]]:
    """The settings and the migrated database of this host, for operator commands."""
    settings = settings_or_exit()
    upgrade_database(settings.resolved_database_url)
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        yield settings, db
    finally:
        db.dispose()
