"""identity.issuers in the broker config: validated at start, with the field that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubejit.config import parse_settings
from kubejit.errors import ConfigError
from kubejit.identity.issuers import issuer_from_settings

pytestmark = pytest.mark.unit

BASE = """
clusters: [{name: a, kubeconfig: kc, audience: x}]
policyFile: policy.yaml
identity:
  issuers:
"""


def _parse(issuers: str) -> object:
    return parse_settings(BASE + issuers, source="kubejit.yaml", base_dir=Path("/etc/kubejit"))


def test_an_issuer_with_defaults() -> None:
    settings = _parse("    - {name: corp, issuerUrl: 'https://idp.example.com', audience: kubejit}\n")
    issuer = issuer_from_settings(settings.identity.issuers[0])  # type: ignore[attr-defined]
    assert (issuer.url, issuer.audience, issuer.mapping.prefix) == (
        "https://idp.example.com",
        "kubejit",
        "corp:",
    )
    assert (issuer.mapping.username_claim, issuer.mapping.groups_claim) == ("sub", "groups")


def test_claim_mapping_and_ca_file_are_read() -> None:
    settings = _parse(
        "    - name: corp\n      issuerUrl: https://idp.example.com/realms/x\n      audience: kubejit\n"
        "      usernameClaim: email\n      groupsClaim: null\n      prefix: 'c:'\n      caFile: ca.pem\n"
        "      requiredClaims: [email]\n"
    )
    s = settings.identity.issuers[0]  # type: ignore[attr-defined]
    assert (s.username_claim, s.groups_claim, s.effective_prefix) == ("email", None, "c:")
    assert s.ca_file == Path("/etc/kubejit/ca.pem")


@pytest.mark.parametrize(
    "issuers,message",
    [
        ("    - {name: corp, issuerUrl: 'http://idp.example.com', audience: k}\n", "https"),
        ("    - {name: corp, issuerUrl: 'ftp://idp', audience: k}\n", "https"),
        ("    - {name: corp, issuerUrl: 'https://idp', audience: k, prefix: corp}\n", "end with ':'"),
        ("    - {name: corp, issuerUrl: 'https://idp', audience: ''}\n", "audience"),
        ("    - {name: Corp, issuerUrl: 'https://idp', audience: k}\n", "name"),
        ("    - {name: dev, issuerUrl: 'https://idp', audience: k}\n", "embedded dev issuer"),
        ("    - {name: corp, issuerUrl: 'https://idp', audience: k, secret: x}\n", "secret"),
        (
            "    - {name: a, issuerUrl: 'https://a', audience: k}\n    - {name: a, issuerUrl: 'https://b', audience: k}\n",
            "duplicate issuer names",
        ),
        (
            "    - {name: a, issuerUrl: 'https://a', audience: k}\n    - {name: b, issuerUrl: 'https://a', audience: k}\n",
            "duplicate issuer URLs",
        ),
        (
            "    - {name: a, issuerUrl: 'https://a', audience: k, prefix: 'x:'}\n"
            "    - {name: b, issuerUrl: 'https://b', audience: k, prefix: 'x:y:'}\n",
            "could collide",
        ),
    ],
)
def test_bad_issuers_are_refused_with_the_field(issuers: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(issuers)


def test_http_is_allowed_on_loopback() -> None:
    settings = _parse("    - {name: t, issuerUrl: 'http://127.0.0.1:5556/dex', audience: k}\n")
    assert settings.identity.issuers[0].issuer_url == "http://127.0.0.1:5556/dex"  # type: ignore[attr-defined]


def _two(a: str, b: str) -> str:
    return (
        f"    - {{name: a, issuerUrl: 'https://a', audience: k{a}}}\n"
        f"    - {{name: b, issuerUrl: 'https://b', audience: k{b}}}\n"
    )


@pytest.mark.parametrize(
    "issuers",
    [
        _two(", groupsPrefix: 'corp:'", ", groupsPrefix: 'corp:'"),  # the same
        _two(", groupsPrefix: 'x:'", ", groupsPrefix: 'x:y:'"),  # one the start of the other
        _two(", groupsPrefix: ''", ", groupsPrefix: ''"),  # both none
        _two(", groupsPrefix: ''", ""),  # none is the start of every prefix
        _two(", groupsPrefix: 'b:'", ""),  # a's groups look like b's (b's default is 'b:')
    ],
)
def test_issuers_whose_groups_could_collide_are_refused(issuers: str) -> None:
    with pytest.raises(ConfigError, match="could collide"):
        _parse(issuers)


@pytest.mark.parametrize(
    "issuers",
    [
        _two("", ""),  # defaults: 'a:' and 'b:'
        _two(", groupsPrefix: ''", ", groupsClaim: null"),  # only a maps groups
        _two(", groupsPrefix: 'b:', groupsClaim: null", ""),  # a maps none: its prefix is unused
        _two(", groupsPrefix: 'corp.eu:'", ", groupsPrefix: 'corp.us:'"),
    ],
)
def test_distinct_group_prefixes_are_accepted(issuers: str) -> None:
    assert len(_parse(issuers).identity.issuers) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "prefix", ["corp", ":", "c orp:", "corp:x", "::", "-corp:", "ad\u200bmins:", "a" * 64 + ":"]
)
def test_a_groups_prefix_must_be_safe_text_ending_with_a_colon(prefix: str) -> None:
    with pytest.raises(ConfigError, match="groupsPrefix"):
        _parse(f"    - {{name: corp, issuerUrl: 'https://idp', audience: k, groupsPrefix: '{prefix}'}}\n")


def test_an_empty_groups_prefix_means_the_idps_names_as_they_are() -> None:
    settings = _parse("    - {name: corp, issuerUrl: 'https://idp', audience: k, groupsPrefix: ''}\n")
    issuer = issuer_from_settings(settings.identity.issuers[0])  # type: ignore[attr-defined]
    assert issuer.mapping.groups_prefix == ""
