"""incidents name the components they affect and receive updates; load samples keep the
users' input failures apart from the service's

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Comma-separated component keys; empty: the service as a whole.
    with op.batch_alter_table("notices") as batch:
        batch.add_column(
            sa.Column("components", sa.String(length=200), nullable=False, server_default="")
        )
    op.create_table(
        "notice_updates",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("notice_id", BIG_ID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notice_updates_notice", "notice_updates", ["notice_id", "at"])
    with op.batch_alter_table("load_samples") as batch:
        batch.add_column(sa.Column("input_failure_ratio", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("load_samples") as batch:
        batch.drop_column("input_failure_ratio")
    op.drop_index("ix_notice_updates_notice", table_name="notice_updates")
    op.drop_table("notice_updates")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("components")
