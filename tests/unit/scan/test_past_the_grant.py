"""The rights an approver is warned of (the request page), read from a role's rules as the API gives them."""

from __future__ import annotations

import pytest

from kubejit.clusters.scan.escalation import past_the_grant as cautions

pytestmark = pytest.mark.unit

IMPERSONATE = "act as other accounts (impersonate), with their rights"
EXEC = "exec or attach into pods, and so use their ServiceAccounts' tokens"
WORKLOADS = "create pods or workloads, which keep running (as their ServiceAccount) after the grant ends"
SECRETS = "read Secrets, token Secrets included"


def rule(
    verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None
) -> dict[str, list[str]]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names or []}


def test_a_read_only_role_has_none() -> None:
    view = [rule(["get", "list", "watch"], ["", "apps"], ["pods", "configmaps", "deployments", "pods/log"])]
    assert cautions(view) == []


def test_edit_like_rules_have_every_caution_in_order() -> None:
    edit = [
        rule(["impersonate"], [""], ["serviceaccounts"]),
        rule(["create", "delete"], [""], ["pods", "pods/exec", "pods/attach"]),
        rule(["get", "list"], [""], ["secrets"]),
    ]
    assert cautions(edit) == [IMPERSONATE, EXEC, WORKLOADS, SECRETS]


def test_wildcards_count() -> None:
    assert cautions([rule(["*"], ["*"], ["*"])]) == [IMPERSONATE, EXEC, WORKLOADS, SECRETS]
    assert cautions([rule(["create"], ["apps"], ["*"])]) == [WORKLOADS]


def test_a_right_limited_by_name_says_which() -> None:
    only = [rule(["get"], [""], ["secrets"], ["app-config"]), rule(["get"], [""], ["secrets"], ["tls"])]
    assert cautions(only) == [f"{SECRETS} (only app-config, tls)"]
    assert cautions([*only, rule(["list"], [""], ["secrets"])]) == [SECRETS]  # one unlimited rule wins


def test_the_wrong_group_or_verb_does_not_count() -> None:
    assert cautions([rule(["create"], ["example.com"], ["pods"])]) == []
    assert cautions([rule(["delete"], [""], ["pods", "secrets"])]) == []
    assert cautions([rule(["get"], [""], ["pods/log"])]) == []
