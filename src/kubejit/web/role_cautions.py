"""What a role lets its holder do beyond what its name says, for the approver reading its rules.

A role's table of rules is long (`admin` has dozens); an approver deciding in a minute needs the few
rights that reach past the grant: act as other accounts, run or reach code that keeps going after the
grant ends, read credentials. kubejit's grant limits already refuse RBAC writes, tokens, token Secrets
and certificates to every grant (deploy/rbac.yaml); these are the rights they cannot refuse. Pure: the
rules as the page has them (``verbs``, ``apiGroups``, ``resources``, ``resourceNames``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

#: (what approving lets the holder do, verbs, (API group, resource) pairs), in the order shown.
_CAUTIONS: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (
        "act as other accounts (impersonate), with their rights",
        ("impersonate",),
        (("", "serviceaccounts"), ("", "users"), ("", "groups"), ("authentication.k8s.io", "uids")),
    ),
    (
        "exec or attach into pods, and so use their ServiceAccounts' tokens",
        ("create", "get"),
        (("", "pods/exec"), ("", "pods/attach")),
    ),
    (
        "create pods or workloads, which keep running (as their ServiceAccount) after the grant ends",
        ("create",),
        (
            ("", "pods"),
            ("apps", "deployments"),
            ("apps", "daemonsets"),
            ("apps", "statefulsets"),
            ("apps", "replicasets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("", "replicationcontrollers"),
        ),
    ),
    ("read Secrets, token Secrets included", ("get", "list", "watch"), (("", "secrets"),)),
)


def cautions(rules: Iterable[Mapping[str, Sequence[str]]]) -> list[str]:
    """The cautions that apply to ``rules``; a right limited to some ``resourceNames`` still counts
    (it names which)."""
    rules = list(rules)
    found = []
    for text, verbs, targets in _CAUTIONS:
        names: set[str] = set()
        unlimited = False
        for rule in rules:
            if _allows(rule, verbs, targets):
                limited = list(rule.get("resourceNames") or [])
                unlimited = unlimited or not limited
                names.update(limited)
        if unlimited:
            found.append(text)
        elif names:
            found.append(f"{text} (only {', '.join(sorted(names))})")
    return found


def _allows(
    rule: Mapping[str, Sequence[str]], verbs: Sequence[str], targets: Sequence[tuple[str, str]]
) -> bool:
    rule_verbs = set(rule.get("verbs") or [])
    if "*" not in rule_verbs and not rule_verbs & set(verbs):
        return False
    groups = set(rule.get("apiGroups") or [])
    resources = set(rule.get("resources") or [])
    return any(
        ("*" in groups or group in groups) and ("*" in resources or resource in resources)
        for group, resource in targets
    )
