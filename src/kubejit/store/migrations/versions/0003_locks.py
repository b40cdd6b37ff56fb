"""Admin locks on a user, a group or a grant.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "locks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("removed_at", UTC_DATETIME, nullable=True),
        sa.Column("removed_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_locks"),
    )
    op.create_index("ix_locks_kind_target", "locks", ["kind", "target"])
    op.create_index("ix_locks_expires_at", "locks", ["expires_at"])


def downgrade() -> None:
    op.drop_table("locks")
