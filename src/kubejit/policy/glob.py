"""Names and the glob patterns policy rules use to cover them.

Kept in one place so that the loader (which checks patterns) and the evaluator (which matches them)
cannot disagree. Patterns are fnmatch-style but restricted to ``*`` and ``?``: brackets would let a
pattern hide what it covers, and case-sensitivity follows Kubernetes, where names are lowercase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from fnmatch import fnmatchcase

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_GLOB = re.compile(r"[-a-z0-9*?]+")
_LABEL_MAX = 63

#: How a DNS-1123 label is explained to a user who typed something else.
DNS_LABEL_HINT = (
    "Use lowercase letters, digits and '-', starting and ending with a letter or digit, "
    "at most 63 characters (a DNS-1123 label), e.g. team-a."
)


def is_dns_label(name: str) -> bool:
    """A Kubernetes namespace name (and, in kubejit, a cluster, role and rule name)."""
    return len(name) <= _LABEL_MAX and _DNS_LABEL.fullmatch(name) is not None


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def is_name_pattern(pattern: str) -> bool:
    """A DNS-1123 label, or a glob made of label characters plus ``*`` and ``?``."""
    if is_glob(pattern):
        return len(pattern) <= _LABEL_MAX and _GLOB.fullmatch(pattern) is not None
    return is_dns_label(pattern)


def matches(pattern: str, name: str) -> bool:
    """Case-sensitive glob match; a pattern without wildcards matches only itself."""
    return pattern == name or (is_glob(pattern) and fnmatchcase(name, pattern))


def matches_namespace(pattern: str, name: str, *, protected: AbstractSet[str]) -> bool:
    """Like ``matches``, but a glob never reaches a protected namespace: only its exact name does.

    This is what keeps ``namespaces: ["*"]`` from handing out kube-system or the broker's own namespace.
    """
    if pattern == name:
        return True
    return is_glob(pattern) and name not in protected and fnmatchcase(name, pattern)


def matches_any(patterns: Iterable[str], name: str) -> bool:
    return any(matches(pattern, name) for pattern in patterns)
