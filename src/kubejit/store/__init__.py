"""Persistence: SQLAlchemy 2 on SQLite (default) or PostgreSQL, migrated by Alembic.

The only package that imports SQLAlchemy. It maps rows to the domain's frozen dataclasses and
writes each grant change together with its hash-chained audit events.
"""

from kubejit.errors import StoreUnavailable
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.engine import create_store_engine, default_store_url
from kubejit.store.grant_store import RequesterSummary, SqlGrantStore
from kubejit.store.migrate import current_revision, head_revision, upgrade

__all__ = [
    "RequesterSummary",
    "SqlAuditStore",
    "SqlGrantStore",
    "StoreUnavailable",
    "create_store_engine",
    "current_revision",
    "default_store_url",
    "head_revision",
    "upgrade",
]
