"""Break-glass post-incident review: each grant's reviewer groups, its "needs review" flag, its review.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Defaults for the rows written before 0005: no reviewers, nothing flagged (their break-glass uses
    # were audited as `grant.break_glass` but predate the review), no review.
    op.add_column(
        "grants", sa.Column("reviewer_groups", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column(
        "grants", sa.Column("needs_review", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("grants", sa.Column("review", sa.JSON(), nullable=True))
    op.create_index("ix_grants_needs_review", "grants", ["needs_review"])


def downgrade() -> None:
    op.drop_index("ix_grants_needs_review", table_name="grants")
    # Batch mode: SQLite rebuilds the table (older SQLite cannot DROP COLUMN); PostgreSQL alters it.
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("review")
        batch.drop_column("needs_review")
        batch.drop_column("reviewer_groups")
