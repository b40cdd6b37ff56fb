"""A verified CI/CD job token's claims → the workload ``Principal`` that policy and grants see. Pure.

The name is the issuer's configured name plus the token's ``sub`` (GitHub:
``repo:acme/app:environment:prod``; GitLab: ``project_path:acme/app:ref_type:branch:ref:main``), so two
issuers never collide and a grant's requester says which pipeline held it. Policy matches the
claims, not the name: ``sub`` formats are configurable per repository on GitHub.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubejit.errors import AuthenticationFailed
from kubejit.identity.names import name_refusal, normal_name
from kubejit.identity.principal import MAX_NAME_LENGTH, Principal

_MAX_CLAIM_CHARS = 512


def claim_text(value: Any) -> str | None:
    """A claim as policy compares it: text as is, numbers in decimal, booleans as true/false; else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and len(value) <= _MAX_CLAIM_CHARS and value.isprintable():
        return value
    return None


def workload_principal(issuer_name: str, claims: Mapping[str, Any]) -> Principal:
    """The principal for a verified job token; raises ``AuthenticationFailed`` without a usable ``sub``."""
    subject = claim_text(claims.get("sub"))
    if not subject:
        raise AuthenticationFailed(
            "the job token has no subject (sub) claim", hint="Use the CI system's own OIDC job token."
        )
    subject = normal_name(subject)
    refusal = name_refusal(subject)
    if refusal is not None:
        raise AuthenticationFailed(
            f"the job token's subject {subject!a} is refused as a name: {refusal}",
            hint="Name repositories and environments in one script, without look-alike letters.",
        )
    name = f"{issuer_name}:{subject}"
    if len(name) > MAX_NAME_LENGTH:
        raise AuthenticationFailed(
            f"the job token's subject is longer than {MAX_NAME_LENGTH - len(issuer_name) - 1} characters",
            hint="Shorten the subject claim format configured for the repository.",
        )
    texts = ((key, claim_text(value)) for key, value in claims.items())
    return Principal(
        name=name,
        issuer=issuer_name,
        claims=tuple(sorted((key, text) for key, text in texts if text is not None)),
    )


#: Claims worth keeping in audit records (which pipeline, which run): never secrets, and bounded.
AUDITED_CLAIMS = (
    *("sub", "repository", "repository_id", "repository_owner_id", "ref", "environment"),
    *("job_workflow_ref", "event_name", "head_ref", "base_ref", "run_id", "actor"),
    *("project_path", "project_id", "namespace_id", "ref_protected", "pipeline_source", "pipeline_id"),
)


def audit_claims(principal: Principal) -> dict[str, str]:
    """The workload's identifying claims for an audit record."""
    claims = dict(principal.claims)
    return {name: claims[name] for name in AUDITED_CLAIMS if name in claims}
