"""The broker's HTTP API (FastAPI), its problem+json errors and its background workers."""
