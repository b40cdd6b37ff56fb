"""The requester's person on each grant, so self-approval under another login is refused after a reload.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: rows written before 0004 have no person, and fall back to the name check.
    op.add_column("grants", sa.Column("requester_person", sa.String(320), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite rebuilds the table (older SQLite cannot DROP COLUMN); PostgreSQL alters it.
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("requester_person")
