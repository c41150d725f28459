"""The migrations build exactly the schema the models declare, on both databases; they
only expand (the previous release runs on the new schema: docs/operations.md,
"Releases"), and a downgrade to the previous revision keeps the data."""

from __future__ import annotations

import ast
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from reelwatch.accounts import create_user
from reelwatch.database import Database
from reelwatch.db.migrate import MIGRATIONS, downgrade_database, schema_revisions, upgrade_database
from reelwatch.db.models import Base, User

# Operations that take away or change what the previous release reads or writes.
CONTRACTING = {"drop_table", "drop_column", "rename_table", "alter_column", "drop_constraint"}
# Reviewed exceptions: (revision file prefix, operation) and why the old code still runs.
ALLOWED = {("0004", "alter_column")}  # widens alert_states.rule from 64 to 200 characters


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def upgrade_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    upgrade = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "upgrade"
    )
    return [node for node in ast.walk(upgrade) if isinstance(node, ast.Call)]


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((item.value for item in call.keywords if item.arg == name), None)


def test_every_migration_only_expands() -> None:
    """No upgrade drops, renames or alters what exists, and a column it adds to an
    existing table takes NULL or has a server default: the previous release, which does
    not know the column, must still insert rows."""
    contracting, strict_columns = [], []
    for path in sorted((MIGRATIONS / "versions").glob("0*.py")):
        for call in upgrade_calls(path):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            if name in CONTRACTING and (path.name[:4], name) not in ALLOWED:
                contracting.append(f"{path.name}: {name}")
            if name == "add_column":
                column = next(arg for arg in call.args if isinstance(arg, ast.Call))
                nullable = keyword(column, "nullable")
                required = isinstance(nullable, ast.Constant) and nullable.value is False
                if required and keyword(column, "server_default") is None:
                    strict_columns.append(path.name)
    assert contracting == []
    assert strict_columns == []


def test_a_downgrade_to_the_previous_revision_keeps_the_data(database_url: str) -> None:
    upgrade_database(database_url)
    _, head = schema_revisions(database_url)
    db = Database(database_url)
    try:
        with db.write() as session:
            create_user(session, "kept@example.com")
        downgrade_database(database_url, f"{int(head) - 1:04d}")
        assert schema_revisions(database_url)[0] == f"{int(head) - 1:04d}"
        assert upgrade_database(database_url)
        with db.read() as session:
            assert session.scalars(select(User.email)).all() == ["kept@example.com"]
    finally:
        db.dispose()


def test_a_later_release_revision_is_left_as_it_is(tmp_path: Path) -> None:
    """A rolled-back release starts on the schema its successor migrated."""
    url = f"sqlite:///{tmp_path / 'later.db'}"
    upgrade_database(url)
    db = Database(url)
    try:
        with db.write() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    finally:
        db.dispose()
    assert upgrade_database(url) is False
    assert schema_revisions(url)[0] == "0999"
