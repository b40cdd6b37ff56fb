"""``http.client`` for plain-HTTP requests, without importing ``ssl``.

The CLI speaks plain http only to a broker on this machine (``check_broker_url``), where TLS has
nothing to do; yet ``http.client`` imports ``ssl`` (and with it OpenSSL's libraries, ~40 ms, more
than half of kubectl's whole start) at import, for ``HTTPSConnection`` alone. ``http_client()``
loads a private copy of ``http.client`` while ``import ssl`` is refused, so the shared module (what
urllib and every https request use) is left whole. Standard library only.
"""

from __future__ import annotations

import sys
from types import ModuleType

_private: ModuleType | None = None


def http_client() -> ModuleType:
    """``http.client`` itself once ``ssl`` or it is loaded anyway; else a copy that has no TLS."""
    global _private
    if "ssl" in sys.modules or "http.client" in sys.modules:
        import http.client

        return http.client
    if _private is None:
        import importlib.util

        spec = importlib.util.find_spec("http.client")
        if spec is None or spec.loader is None:  # pragma: no cover - the standard library has it
            raise ImportError("http.client")
        module = importlib.util.module_from_spec(spec)
        sys.modules["ssl"] = None  # type: ignore[assignment]  # None: `import ssl` raises ImportError
        try:
            spec.loader.exec_module(module)
        finally:
            del sys.modules["ssl"]
        _private = module
    return _private
