"""Names that read as another's are refused; unverified emails never name a person; several audiences need azp."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from kubejit.errors import AuthenticationFailed
from kubejit.identity.claims import ClaimMapping, person_of, principal_from_claims
from kubejit.identity.names import name_refusal, normal_name
from kubejit.identity.tokens import TokenRules, verify_jwt
from kubejit.identity.workload import workload_principal

pytestmark = pytest.mark.unit

SUB = ClaimMapping(issuer_name="corp", prefix="corp:")
EMAIL = ClaimMapping(issuer_name="corp", prefix="corp:", username_claim="email")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("\u0430lice", "Cyrillic and Latin"),  # Cyrillic a
        ("alic\u0435@example.com", "Cyrillic and Latin"),  # Cyrillic ie
        ("b\u03bfb", "Greek and Latin"),  # Greek omicron
        ("\u0430\u03b1", "Cyrillic and Greek"),
        ("\uff41\uff4c\uff49\uff43\uff45", "compatibility characters"),  # fullwidth alice
        ("\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e", "compatibility characters"),  # bold alice
        ("\ufb01nn", "compatibility characters"),  # the fi ligature
    ],
)
def test_look_alike_usernames_are_refused_with_a_clear_message(name: str, words: str) -> None:
    with pytest.raises(AuthenticationFailed, match=words) as refused:
        principal_from_claims({"sub": name}, SUB)
    assert refused.value.http_status == 401
    assert ascii(name) in refused.value.message  # shown escaped: the reader sees what it really is
    assert words in str(name_refusal(normal_name(name)))


@pytest.mark.parametrize(
    "name", ["alice", "алиса", "αλίκη", "josé", "李雷", "alice-1_x.y@example.com", "renée", "müller"]
)
def test_names_in_one_script_pass(name: str) -> None:
    assert principal_from_claims({"sub": name}, SUB).name == f"corp:{name}"


def test_a_decomposed_name_is_composed_not_refused() -> None:
    assert principal_from_claims({"sub": "jose\u0301"}, SUB).name == "corp:jos\u00e9"


def test_workload_subjects_are_checked_the_same_way() -> None:
    with pytest.raises(AuthenticationFailed, match="Cyrillic and Latin"):
        workload_principal("github", {"sub": "repo:acme/\u0430pp:ref:refs/heads/main"})
    assert workload_principal("github", {"sub": "repo:acme/app"}).name == "github:repo:acme/app"


@pytest.mark.parametrize("verified", [None, False, "false", "no", 1])
def test_an_email_the_idp_did_not_verify_is_neither_username_nor_person(verified: Any) -> None:
    body = {"sub": "u1", "email": "alice@example.com", "email_verified": verified}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(AuthenticationFailed, match="email_verified is missing or false"):
        principal_from_claims(body, EMAIL)
    assert principal_from_claims(body, SUB).person is None
    assert person_of(body) is None


@pytest.mark.parametrize("verified", [True, "true", "TRUE"])
def test_a_verified_email_names_the_person_lowercased(verified: Any) -> None:
    body = {"sub": "u1", "email": "Alice@Example.com", "email_verified": verified}
    assert principal_from_claims(body, EMAIL).name == "corp:Alice@Example.com"
    assert principal_from_claims(body, SUB).person == "alice@example.com"


@pytest.mark.parametrize("email", ["not-an-address", "a b@example.com", "a@b\n", 7, "x" * 400 + "@e.com"])
def test_unusable_emails_name_no_person(email: Any) -> None:
    assert person_of({"email": email, "email_verified": True}) is None


KEY = RSAKey.generate_key(2048, parameters={"kid": "k"}, private=True)
NOW = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())
RULES = TokenRules(issuer="https://idp", audience="kubejit-broker", authorized_parties=("kubejit-cli",))


def token(**claims: Any) -> str:
    body = {"iss": "https://idp", "sub": "u", "iat": NOW, "exp": NOW + 60, **claims}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode({"alg": "RS256", "kid": "k"}, {k: v for k, v in body.items() if v is not None}, KEY)


@pytest.mark.parametrize(
    ("aud", "azp", "words"),
    [
        (["kubejit-broker", "other-app"], None, "no authorized party"),
        (["kubejit-broker", "other-app"], "other-app", "issued to the client 'other-app'"),
    ],
)
def test_several_audiences_need_an_azp_naming_our_client(aud: list[str], azp: str | None, words: str) -> None:
    with pytest.raises(AuthenticationFailed, match=words):
        verify_jwt(token(aud=aud, azp=azp), keys=KeySet([KEY]), rules=RULES, now=NOW)


@pytest.mark.parametrize(
    ("aud", "azp"),
    [
        (["kubejit-broker", "kubejit-cli"], "kubejit-cli"),  # Dex's cross-client token for the CLI
        (["kubejit-broker", "other-app"], "kubejit-broker"),
        ("kubejit-broker", None),
        (["kubejit-broker"], None),
        ("kubejit-broker", "android-app"),  # one audience: azp may name a sibling client
    ],
)
def test_tokens_issued_to_our_clients_pass(aud: Any, azp: str | None) -> None:
    claims = verify_jwt(token(aud=aud, azp=azp), keys=KeySet([KEY]), rules=RULES, now=NOW)
    assert claims["sub"] == "u"
