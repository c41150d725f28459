"""Alembic environment: runs migrations online, serialised across processes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from reelwatch.database import Database
from reelwatch.db.models import Base

# Any number of servers may start at once against one PostgreSQL: one migrates, the
# others wait on this advisory lock and then find nothing left to do.
MIGRATION_LOCK_ID = 0x7265656C  # "reel"


def run_migrations_online() -> None:
    database = Database(context.config.get_main_option("sqlalchemy.url") or "")
    with database.engine.connect() as connection:
        if not database.is_sqlite:
            connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=database.is_sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
        if not database.is_sqlite:
            connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
            connection.commit()
    database.dispose()


run_migrations_online()
