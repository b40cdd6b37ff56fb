"""Notifications: pure messages and per-format rendering; delivery reuses the audit outbox (issue 13)."""
