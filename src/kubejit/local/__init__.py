"""What the client side keeps on this machine: the login session, refresh tokens, private files.

Standard library only (import-linter checks it), so the exec plugin can use it on kubectl's hot path
and every part of the CLI can build on it without pulling in httpx, Rich or pydantic.
"""
