"""kubejit: just-in-time, short-lived, audited access to Kubernetes clusters.

Kept import-light on purpose: the exec credential plugin imports this package on every kubectl call.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
