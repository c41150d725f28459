"""Apply Alembic migrations programmatically, for ``reelwatch db upgrade`` and start-up."""

from __future__ import annotations

import logging
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
    current, head = schema_revisions(database_url)
    if current is not None and not is_known_revision(database_url, current):
        logger.warning(
            "the database is at revision %s, which a later release made (this one knows up "
            "to %s): left as it is",
            current,
            head,
        )
        return False
    command.upgrade(alembic_config(database_url), revision)
    return True


def downgrade_database(database_url: str, revision: str) -> None:
    """Undo the migrations after ``revision``, with this code's downgrade steps."""
    command.downgrade(alembic_config(database_url), revision)


def is_known_revision(database_url: str, revision: str) -> bool:
    """Whether this code's migrations include ``revision``."""
    try:
        ScriptDirectory.from_config(alembic_config(database_url)).get_revision(revision)
    except CommandError:
        return False
    return True


def schema_revisions(database_url: str) -> tuple[str | None, str]:
    """The database's current revision (None: never migrated) and the code's head."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = create_engine(with_connection_defaults(make_url(database_url)))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return current, head or ""
