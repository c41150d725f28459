"""an index for a user's videos filtered on a status

Without it a user's list filtered on a status (``?status=failed``) combines the user's
index with the status index, reading every video of that status in the table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_videos_user_status_created",
        "videos",
        ["user_id", "status", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_videos_user_status_created", table_name="videos")
