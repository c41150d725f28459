"""What every command module shares: the consoles and loading the settings."""

from __future__ import annotations

import typer
from rich.console import Console

from reelwatch.config import ConfigError, Settings, load_settings

console = Console()
err = Console(stderr=True)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the one-line configuration error."""
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
