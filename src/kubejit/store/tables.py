"""Table definitions (SQLAlchemy Core). Rows never leave store/: they are mapped to domain dataclasses.

Times are stored as UTC: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite (which has no
time zone type); ``UTCDateTime`` hides the difference and always hands back tz-aware UTC values.
Durations are whole seconds. The initial migration mirrors this file; a test keeps them equal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: Deterministic constraint names, so later (batch) migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Accepts only tz-aware datetimes, stores UTC, returns tz-aware UTC on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: kubejit stores only timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A 64-bit sequence on PostgreSQL; on SQLite an INTEGER PRIMARY KEY (the rowid itself).
SEQ_TYPE: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("requester", sa.String(255), nullable=False),
    sa.Column("cluster", sa.String(255), nullable=False),
    sa.Column("namespaces", sa.JSON, nullable=False),
    sa.Column("role_name", sa.String(255), nullable=False),
    sa.Column("role_kind", sa.String(32), nullable=False),
    sa.Column("role_ref_name", sa.String(255), nullable=False),
    sa.Column("role_cluster_scope", sa.Boolean, nullable=False),
    sa.Column("duration_seconds", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ticket", sa.String(255), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("pending_until", UTCDateTime, nullable=False),
    sa.Column("approvals_required", sa.Integer, nullable=False),
    sa.Column("approver_groups", sa.JSON, nullable=False),
    sa.Column("approvals", sa.JSON, nullable=False),
    sa.Column("break_glass", sa.Boolean, nullable=False),
    sa.Column("extendable", sa.Boolean, nullable=False),
    sa.Column("max_duration_seconds", sa.Integer, nullable=False),
    sa.Column("activated_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("ended_by", sa.String(255), nullable=True),
    sa.Column("end_reason", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # The requester's person (a verified email, at most 320 characters): another login of theirs
    # cannot approve, even after a restart. NULL for logins without one and rows before 0004.
    sa.Column("requester_person", sa.String(320), nullable=True),
    # Break-glass review (migration 0005): who reviews, whether it is still due, and the review itself.
    sa.Column("reviewer_groups", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("review", sa.JSON(none_as_null=True), nullable=True),
    # The sweeper's two range scans: live grants by expiry, pending ones by their deadline.
    sa.Index("ix_grants_state_expires_at", "state", "expires_at"),
    sa.Index("ix_grants_state_pending_until", "state", "pending_until"),
    sa.Index("ix_grants_requester", "requester"),
    sa.Index("ix_grants_cluster", "cluster"),
    sa.Index("ix_grants_needs_review", "needs_review"),
)

#: Minted tokens, by hash and id only: the token itself is never stored.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("grant_id", sa.String(64), sa.ForeignKey("grants.id"), nullable=False),
    sa.Column("token_id", sa.String(255), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_tokens_grant_id", "grant_id"),
    # Joins the cluster's audit log (which names the token's id) back to the grant.
    sa.Index("ix_tokens_token_id", "token_id"),
    sa.Index("ix_tokens_token_sha256", "token_sha256", unique=True),
)

#: The hash-chained audit log. ``seq`` is assigned by the writer holding the tail: gapless.
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", SEQ_TYPE, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(32), nullable=False, unique=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("grant_id", sa.String(64), nullable=True),
    sa.Column("subject", sa.String(255), nullable=True),
    sa.Column("cluster", sa.String(255), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_events_grant_id", "grant_id"),
    sa.Index("ix_audit_events_actor", "actor"),
    sa.Index("ix_audit_events_cluster", "cluster"),
    sa.Index("ix_audit_events_at", "at"),
)

#: Signed checkpoints of the audit chain: a signature over (seq, hash) makes cutting the tail evident.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", SEQ_TYPE, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
)

#: The audit log is its own outbox: each sink remembers the last event it delivered.
audit_sink_cursors = sa.Table(
    "audit_sink_cursors",
    metadata,
    sa.Column("sink", sa.String(128), primary_key=True),
    sa.Column("delivered_seq", SEQ_TYPE, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("last_delivered_at", UTCDateTime, nullable=True),
    # Backoff and the lease that keeps two replicas from sending the same batch at once.
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
)

#: People seen by the broker: Kubernetes has no user database, so kubejit keeps this one.
users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("issuer", sa.String(512), nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_login", UTCDateTime, nullable=False),
)

#: Token ids (issuer + jti, hashed) already exchanged, kept until the token expires: replay refused.
seen_token_ids = sa.Table(
    "seen_token_ids",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_seen_token_ids_expires_at", "expires_at"),
)

#: Admin locks on a user, a group or a grant (docs/offboarding.md). Kept after removal, for review.
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("removed_at", UTCDateTime, nullable=True),
    sa.Column("removed_by", sa.String(255), nullable=True),
    # The check on every request: the locks on one user, their groups and one grant.
    sa.Index("ix_locks_kind_target", "kind", "target"),
    # The sweeper's range scan for locks past their end. Not on removed_at: most locks are in force,
    # and SQLite would pick that index for the per-request check and scan them all.
    sa.Index("ix_locks_expires_at", "expires_at"),
)

#: Browser sessions of the web pages (docs/web.md): only the SHA-256 of the session id is kept.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("principal", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_web_sessions_expires_at", "expires_at"),
)

#: Sign-ins on their way to the issuer and back (state, nonce, PKCE verifier), for ten minutes at most.
web_sign_ins = sa.Table(
    "web_sign_ins",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(64), nullable=False),
    sa.Column("code_verifier", sa.String(128), nullable=False),
    sa.Column("return_to", sa.String(1024), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_web_sign_ins_created_at", "created_at"),
)
