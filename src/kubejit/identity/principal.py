"""A principal is a person or workload as policy sees it; pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Grants keep their requester in a 255-character column: a longer name would be cut, so it is refused.
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Principal:
    #: Unique across issuers: the issuer's prefix plus its username claim, e.g. ``dev:alice``.
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    issuer: str = "dev"
    #: Workload claims (CI/CD federation); empty for people.
    claims: tuple[tuple[str, str], ...] = ()
    #: The human behind the login across issuers: the IdP-verified email, lowercased, or None. Two
    #: logins (``okta:alice``, ``google:alice``) with the same one are one person to approval rules.
    person: str | None = None

    def same_person(self, name: str, person: str | None) -> bool:
        """Whether a login recorded as (``name``, ``person``) is this one's human."""
        return name == self.name or (person is not None and person == self.person)
