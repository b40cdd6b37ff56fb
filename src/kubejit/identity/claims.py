"""From verified token claims to a Principal: per-issuer claim mapping, pure.

Each issuer names the claim that holds the username and the one that holds groups, and gives a
prefix (``dex:``) put in front of both, so ``alice`` at one IdP and ``alice`` at another are two
different people to policy, and a group named ``admins`` at a test IdP is not the corporate one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from kubejit.errors import AuthenticationFailed
from kubejit.identity.principal import MAX_NAME_LENGTH, Principal

MAX_GROUPS = 256


@dataclass(frozen=True)
class ClaimMapping:
    #: The issuer's short name, recorded as ``Principal.issuer``.
    issuer_name: str
    #: Put before the username; must end with ``:`` (config validates) so it cannot blend into a name.
    prefix: str
    username_claim: str = "sub"
    #: None: the issuer carries no groups.
    groups_claim: str | None = "groups"
    #: Put before every group; None means "the same as prefix", "" means none.
    groups_prefix: str | None = None


def principal_from_claims(claims: Mapping[str, Any], mapping: ClaimMapping) -> Principal:
    """The person the verified ``claims`` name, or AuthenticationFailed when the claims cannot say."""
    username = claims.get(mapping.username_claim)
    if not _usable(username) or len(mapping.prefix + username) > MAX_NAME_LENGTH:
        raise AuthenticationFailed(
            f"the token's '{mapping.username_claim}' claim is missing or not a usable name",
            hint="Ask an administrator to check identity.issuers[].usernameClaim in the broker config.",
        )
    verified = claims.get("email_verified")
    if mapping.username_claim == "email" and (verified is False or str(verified).lower() == "false"):
        # An unverified address is anyone's claim to be that person. Some IdPs (Cognito) send "false".
        raise AuthenticationFailed("the token's email address is not verified by the identity provider")
    group_prefix = mapping.prefix if mapping.groups_prefix is None else mapping.groups_prefix
    groups = frozenset(group_prefix + g for g in _groups(claims, mapping.groups_claim))
    return Principal(name=mapping.prefix + username, groups=groups, issuer=mapping.issuer_name)


def _usable(value: Any) -> TypeGuard[str]:
    """Printable (no control, invisible or bidi characters) and no spaces, at most 200 characters: a name
    ends up in labels, audit records and logs, where it must read as what it is."""
    return isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable() and " " not in value


def _groups(claims: Mapping[str, Any], claim: str | None) -> list[str]:
    if claim is None or claims.get(claim) is None:
        return []
    value = claims[claim]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or len(values) > MAX_GROUPS or not all(_usable(g) for g in values):
        raise AuthenticationFailed(f"the token's '{claim}' claim is not a list of group names")
    return values
