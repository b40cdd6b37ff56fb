"""Grants: the state machine of one piece of just-in-time access, and the service that drives it."""
