"""Apply Alembic migrations programmatically, for ``reelwatch db upgrade`` and start-up."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from reelwatch.database import with_connection_defaults

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on a password containing '%'.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str, revision: str = "head") -> bool:
    """Migrate to ``revision``. False, and nothing done, when a later release has migrated
    the database past this code's migrations: a rolled-back release runs on its
    successor's schema, which migrations keep compatible (expand-only, docs/operations.md)."""
    later = None if not_created_yet(database_url) else later_revision(database_url)
    if later:
        logger.warning("the database is at revision %s, a later release's: left as it is", later)
        return False
    command.upgrade(alembic_config(database_url), revision)
    return True


def later_revision(database_url: str) -> str | None:
    """The database's revision when this code's migrations do not know it."""
    current, _ = schema_revisions(database_url)
    if current is None or is_known_revision(current):
        return None
    return current


def not_created_yet(database_url: str) -> bool:
    """A SQLite file that does not exist yet (nor, maybe, its folder: migrating makes
    both, and only migrating should)."""
    url = make_url(database_url)
    name = url.database or ""
    is_file = url.get_backend_name() == "sqlite" and name not in ("", ":memory:")
    return is_file and not Path(name).exists()


def downgrade_database(database_url: str, revision: str) -> None:
    """Undo the migrations after ``revision``, with this code's downgrade steps."""
    command.downgrade(alembic_config(database_url), revision)


@cache
def migration_scripts() -> ScriptDirectory:
    """This code's migrations (read once: they do not change while it runs)."""
    return ScriptDirectory(str(MIGRATIONS))


def is_known_revision(revision: str) -> bool:
    """Whether this code's migrations include ``revision``."""
    try:
        migration_scripts().get_revision(revision)
    except CommandError:
        return False
    return True


def schema_revisions(database_url: str) -> tuple[str | None, str]:
    """The database's current revision (None: never migrated) and the code's head."""
    head = migration_scripts().get_current_head()
    engine = create_engine(with_connection_defaults(make_url(database_url)))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return current, head or ""
