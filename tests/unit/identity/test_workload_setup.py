"""Start-up checks of token exchange: policy and config must agree, or the broker does not start."""

from __future__ import annotations

from typing import Any

import pytest

from kubejit.config import Settings
from kubejit.errors import ConfigError, PolicyError
from kubejit.policy.load import parse_policy
from kubejit.server.exchange_wiring import check_workload_setup

pytestmark = pytest.mark.unit

POLICY = """
roles: {edit: {clusterRole: edit}}
rules: []
workloads:
  - name: deploy
    issuer: github
    github: {repository_id: "1"}
    clusters: [dev]
    namespaces: [app]
    roles: [edit]
"""


def settings(**extra: Any) -> Settings:
    base = {"clusters": [{"name": "dev", "kubeconfig": "/k", "audience": "a"}], "policyFile": "/p"}
    return Settings.model_validate(base | extra)


def github(
    name: str = "github", kind: str = "github", url: str = "https://token.actions.githubusercontent.com"
) -> dict[str, str]:
    return {"name": name, "kind": kind, "issuerUrl": url, "audience": "https://kubejit.example"}


def test_a_matching_setup_passes() -> None:
    check_workload_setup(settings(workloadIssuers=[github()]), parse_policy(POLICY, source="p.yaml"))


@pytest.mark.parametrize(
    ("issuers", "words"),
    [([], "names the issuer 'github', which is not configured"), ([github(kind="gitlab")], "of kind gitlab")],
)
def test_a_rule_whose_issuer_is_missing_or_of_another_kind_stops_the_broker(
    issuers: list[dict[str, str]], words: str
) -> None:
    with pytest.raises(PolicyError, match=words) as caught:
        check_workload_setup(settings(workloadIssuers=issuers), parse_policy(POLICY, source="p.yaml"))
    assert caught.value.message.startswith("p.yaml:5: ")


@pytest.mark.parametrize(
    ("person", "words"),
    [
        ({"name": "github", "issuerUrl": "https://idp.example"}, "same prefix"),
        # a person 'acme/app:ref:refs/heads/main' there would be github:repo:acme/app:ref:refs/heads/main
        ({"name": "corp", "prefix": "github:repo:", "issuerUrl": "https://idp.example"}, "overlapping"),
        ({"name": "corp", "prefix": "git:", "issuerUrl": "https://idp.example"}, None),
        (
            {"name": "corp", "issuerUrl": "https://token.actions.githubusercontent.com"},
            "for people and for workloads",
        ),
    ],
)
def test_a_workload_issuer_shares_neither_prefix_nor_url_with_people(
    person: dict[str, str], words: str | None
) -> None:
    people = {"issuers": [{**person, "audience": "kubejit"}]}
    setup = settings(workloadIssuers=[github()], identity=people)
    if words is None:  # 'git:' and 'github:' never collide: the colon ends each prefix
        check_workload_setup(setup, parse_policy(POLICY))
        return
    with pytest.raises(ConfigError, match=words):
        check_workload_setup(setup, parse_policy(POLICY))


@pytest.mark.parametrize(
    ("issuers", "words"),
    [
        ([github(url="http://token.example")], "https://"),
        ([github(), github(url="https://other.example")], "duplicate workload issuer name"),
        ([github(kind="jenkins")], "kind"),
    ],
)
def test_bad_workload_issuer_settings_are_refused(issuers: list[dict[str, str]], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        settings(workloadIssuers=issuers)
