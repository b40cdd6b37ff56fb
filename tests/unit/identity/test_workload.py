"""Job token claims → workload principal: prefixed subject, claims as text, unusable tokens refused."""

from __future__ import annotations

import pytest

from kubejit.errors import AuthenticationFailed
from kubejit.identity.principal import MAX_NAME_LENGTH
from kubejit.identity.workload import audit_claims, claim_text, workload_principal

pytestmark = pytest.mark.unit


def test_the_name_is_the_issuer_prefix_and_the_subject() -> None:
    principal = workload_principal(
        "github",
        {
            "sub": "repo:acme/app:environment:prod",
            "repository_id": "123",
            "run_attempt": 2,
            "ref_protected": False,
            "groups": ["x"],
            "nested": {"a": 1},
        },
    )
    assert principal.name == "github:repo:acme/app:environment:prod"
    assert principal.issuer == "github"
    assert principal.groups == frozenset()
    assert dict(principal.claims) == {
        "sub": "repo:acme/app:environment:prod",
        "repository_id": "123",
        "run_attempt": "2",
        "ref_protected": "false",
    }
    assert audit_claims(principal) == {
        "sub": "repo:acme/app:environment:prod",
        "repository_id": "123",
        "ref_protected": "false",
    }


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 5.5}, {"sub": ["a"]}, {"sub": "a\nb"}])
def test_a_token_without_a_usable_subject_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(AuthenticationFailed, match="subject"):
        workload_principal("github", claims)


def test_a_name_too_long_for_the_grant_record_is_refused_not_cut() -> None:
    workload_principal("gh", {"sub": "x" * (MAX_NAME_LENGTH - 3)})
    with pytest.raises(AuthenticationFailed, match="longer than"):
        workload_principal("gh", {"sub": "x" * (MAX_NAME_LENGTH - 2)})


def test_claim_text_never_turns_structures_or_control_characters_into_text() -> None:
    assert claim_text(True) == "true"
    assert claim_text(7) == "7"
    assert claim_text("refs/heads/main") == "refs/heads/main"
    assert claim_text(None) is None
    assert claim_text(["a"]) is None
    assert claim_text("a\x00b") is None
    assert claim_text("x" * 513) is None
