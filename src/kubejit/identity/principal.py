"""A principal is a person or workload as policy sees it; pure data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    #: Unique across issuers: the issuer's prefix plus its username claim, e.g. ``dev:alice``.
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    issuer: str = "dev"
    #: Workload claims (CI/CD federation); empty for people.
    claims: tuple[tuple[str, str], ...] = ()
