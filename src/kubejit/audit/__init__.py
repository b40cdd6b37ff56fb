"""Audit: the stored event model and the hash chain that makes edits and deletions detectable.

The chain logic is pure (``chain.py``); the store appends and reads events, sinks ship them.
"""
