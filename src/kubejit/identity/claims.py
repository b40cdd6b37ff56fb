"""From verified token claims to a Principal: per-issuer claim mapping, pure.

Each issuer names the claim that holds the username and the one that holds groups, and gives a
prefix (``dex:``) put in front of both, so ``alice`` at one IdP and ``alice`` at another are two
different people to policy, and a group named ``admins`` at a test IdP is not the corporate one.

The username must read as what it is (``names``: NFKC form, no mix of look-alike scripts). An email
counts only when the IdP says it verified it (``email_verified`` true): as the username, an unverified
or unstated address is refused; as the ``person`` behind the login (the same human at two issuers),
it is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from kubejit.errors import AuthenticationFailed
from kubejit.identity.names import name_refusal, normal_name
from kubejit.identity.principal import MAX_NAME_LENGTH, Principal

MAX_GROUPS = 256
#: RFC 5321's limit on a forward path; anything longer is not an address.
MAX_EMAIL_LENGTH = 320


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
    username = normal_name(username)
    refusal = name_refusal(username)
    if refusal is not None:
        raise AuthenticationFailed(
            f"the token's '{mapping.username_claim}' claim {username!a} is refused as a name: {refusal}",
            hint="Log in with an account whose name is written in one script, without look-alike letters.",
        )
    if mapping.username_claim == "email" and not email_verified(claims):
        # An unverified address is anyone's claim to be that person. Missing counts as unverified.
        raise AuthenticationFailed(
            "the token's email address is not verified by the identity provider (email_verified is "
            "missing or false), so it cannot be the username",
            hint="Verify the address at the identity provider; an administrator can make it send "
            "email_verified (the email scope) or set usernameClaim to another claim.",
        )
    group_prefix = mapping.prefix if mapping.groups_prefix is None else mapping.groups_prefix
    groups = frozenset(group_prefix + g for g in _groups(claims, mapping.groups_claim))
    return Principal(
        name=mapping.prefix + username, groups=groups, issuer=mapping.issuer_name, person=person_of(claims)
    )


def email_verified(claims: Mapping[str, Any]) -> bool:
    """True only when the IdP says so: ``true``, or ``"true"`` as some IdPs (Cognito) send it."""
    verified = claims.get("email_verified")
    return verified is True or (isinstance(verified, str) and verified.lower() == "true")


def person_of(claims: Mapping[str, Any]) -> str | None:
    """The verified email, lowercased: the same human behind logins at two issuers, else None.

    Two people wrongly taken for one only lose approvals (never gain access), so an issuer that
    vouches for an address it does not own can block, not grant.
    """
    email = claims.get("email")
    if not email_verified(claims) or not isinstance(email, str) or len(email) > MAX_EMAIL_LENGTH:
        return None
    if "@" not in email or not email.isprintable() or " " in email:
        return None
    return normal_name(email).lower()


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
