"""Initial schema: grants, tokens, hash-chained audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Written out here rather than imported from tables.py: a migration must not change when the models do.
UTC_DATETIME = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("namespaces", sa.JSON(), nullable=False),
        sa.Column("role_name", sa.String(255), nullable=False),
        sa.Column("role_kind", sa.String(32), nullable=False),
        sa.Column("role_ref_name", sa.String(255), nullable=False),
        sa.Column("role_cluster_scope", sa.Boolean(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("pending_until", UTC_DATETIME, nullable=False),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("approver_groups", sa.JSON(), nullable=False),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("extendable", sa.Boolean(), nullable=False),
        sa.Column("max_duration_seconds", sa.Integer(), nullable=False),
        sa.Column("activated_at", UTC_DATETIME, nullable=True),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("ended_by", sa.String(255), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
    )
    op.create_index("ix_grants_state_expires_at", "grants", ["state", "expires_at"])
    op.create_index("ix_grants_state_pending_until", "grants", ["state", "pending_until"])
    op.create_index("ix_grants_requester", "grants", ["requester"])
    op.create_index("ix_grants_cluster", "grants", ["cluster"])

    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("token_id", sa.String(255), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"], name="fk_tokens_grant_id_grants"),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    op.create_index("ix_tokens_grant_id", "tokens", ["grant_id"])
    op.create_index("ix_tokens_token_id", "tokens", ["token_id"])
    op.create_index("ix_tokens_token_sha256", "tokens", ["token_sha256"], unique=True)

    op.create_table(
        "audit_events",
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("cluster", sa.String(255), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
    )
    op.create_index("ix_audit_events_grant_id", "audit_events", ["grant_id"])
    op.create_index("ix_audit_events_actor", "audit_events", ["actor"])
    op.create_index("ix_audit_events_cluster", "audit_events", ["cluster"])
    op.create_index("ix_audit_events_at", "audit_events", ["at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("tokens")
    op.drop_table("grants")
