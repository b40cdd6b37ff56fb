"""Audit delivery: the audit log is the outbox, and each sink has a cursor in the store.

A worker per sink reads the events after its cursor in order, hands a batch to the sink, and moves
the cursor only once the sink acknowledged it: at least once, in order, nothing lost while a sink is
down. Formatting (RFC 5424, HMAC signatures, HEC bodies) is pure and lives apart from the sockets.
"""
