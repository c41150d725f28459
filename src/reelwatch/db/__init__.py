"""Persistence: the SQLAlchemy models, the ``Database`` handle and Alembic migrations."""

from reelwatch.db.database import Database, utcnow

__all__ = ["Database", "utcnow"]
