"""The engine stands alone: its own tables, created without the application's migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from reelwatch.db.database import Database
from reelwatch.engine import schema


def test_create_all_makes_only_the_engine_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'engine.db'}")
    try:
        schema.create_all(db)
        schema.create_all(db)  # idempotent: existing tables are left as they are
        tables = set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
    assert tables == {"workflows", "tasks", "events", "workers", "leadership"}
