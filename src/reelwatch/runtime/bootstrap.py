"""What ``up`` and ``server`` do before serving: migrate, create the first admin."""

from __future__ import annotations

from rich.console import Console

from reelwatch.accounts import ensure_admin
from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.storage import open_store


def admin_token_path(settings: Settings) -> str:
    return str(settings.home / "admin.token")


def prepare_instance(settings: Settings, console: Console | None = None) -> None:
    """Bring the database to the latest schema and make sure an admin exists."""
    settings.home.mkdir(parents=True, exist_ok=True)
    open_store(settings).ensure_layout()
    upgrade_database(settings.resolved_database_url)
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        token_file = settings.home / "admin.token"
        admin = ensure_admin(db, token_file)
    finally:
        db.dispose()
    if admin and console:
        console.print(
            f"[bold green]Created admin {admin.email}[/]; API token (also in {token_file}):\n"
            f"  {admin.token}"
        )
