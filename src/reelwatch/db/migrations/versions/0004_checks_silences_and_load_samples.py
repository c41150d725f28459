"""checks with their history, alert silences, load samples, longer alert rule names

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "check_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_check_transitions_name_at", "check_transitions", ["name", "at"])
    op.create_table(
        "silences",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_silences_rule_ends", "silences", ["rule", "ends_at"])
    op.create_table(
        "load_samples",
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("waiting_tasks", sa.Integer(), nullable=False),
        sa.Column("oldest_wait_s", sa.Float(), nullable=False),
        sa.Column("tasks_done_per_minute", sa.Float(), nullable=False),
        sa.Column("failure_ratio", sa.Float(), nullable=False),
        sa.Column("live_workers", sa.Integer(), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_percent", sa.Float(), nullable=True),
        sa.Column("disk_free_percent", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("at"),
    )
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.alter_column(
            "rule", existing_type=sa.String(length=64), type_=sa.String(length=200)
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.alter_column(
            "rule", existing_type=sa.String(length=200), type_=sa.String(length=64)
        )
    op.drop_table("load_samples")
    op.drop_index("ix_silences_rule_ends", table_name="silences")
    op.drop_table("silences")
    op.drop_index("ix_check_transitions_name_at", table_name="check_transitions")
    op.drop_table("check_transitions")
    op.drop_table("checks")
