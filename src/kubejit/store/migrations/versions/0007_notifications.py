"""One row per grant end warned about (``grant.expiring_soon`` once, across replicas); people's email.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "grant_expiry_warnings",
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("warned_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"], name="fk_grant_expiry_warnings_grant_id_grants"),
        sa.PrimaryKeyConstraint("grant_id", "expires_at", name="pk_grant_expiry_warnings"),
    )
    # Nullable: people seen before 0005, and logins without a verified email, have none.
    op.add_column("users", sa.Column("email", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email")
    op.drop_table("grant_expiry_warnings")
