"""deploy/rbac.yaml for the configured namespaces, built as data (no I/O), so it is tested by value.

The shipped manifest names kubejit's default namespaces (``kubejit``, ``kubejit-grants``). A broker
configured with other ``brokerNamespace`` / ``grantNamespace`` needs every occurrence changed: the
objects' namespaces, the bindings' subjects, and in the admission policy its ``brokerNamespace``,
``grantNamespace`` and ``protectedNamespaces`` variables and the broker identity it matches. A
missed one fails safe (the policy would not match the broker, and ``install_broker``'s probe says
so) but leaves the broker unguarded or unable to work, so each edit is exact and checked.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from kubejit.errors import InvalidInput

DEFAULT_BROKER_NAMESPACE = "kubejit"
DEFAULT_GRANT_NAMESPACE = "kubejit-grants"
BROKER_ACCOUNT = "kubejit-broker"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_POLICY_KIND = "ValidatingAdmissionPolicy"
#: The admission policy that confines the broker's identities, and the one that confines the grants'.
BROKER_POLICY = "kubejit-broker-bindings"
GRANT_POLICY = "kubejit-grant-limits"


def broker_manifest(
    documents: list[dict[str, Any]], *, broker_namespace: str, grant_namespace: str
) -> list[dict[str, Any]]:
    """The manifest's ``documents`` (parsed YAML) with the two namespaces put in; a new list."""
    _check_namespaces(broker_namespace, grant_namespace)
    names = {DEFAULT_BROKER_NAMESPACE: broker_namespace, DEFAULT_GRANT_NAMESPACE: grant_namespace}
    built = copy.deepcopy(documents)
    for document in built:
        metadata = document.get("metadata", {})
        if metadata.get("namespace") in names:
            metadata["namespace"] = names[metadata["namespace"]]
        for subject in document.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") in names:
                subject["namespace"] = names[subject["namespace"]]
        if _is_policy(document, BROKER_POLICY):
            _admission_policy(document["spec"], broker_namespace, grant_namespace)
        elif _is_policy(document, GRANT_POLICY):
            (identity,) = document["spec"]["matchConditions"]
            identity["expression"] = _substitute(
                identity["expression"], {_accounts(DEFAULT_GRANT_NAMESPACE): _accounts(grant_namespace)}
            )
    return built


def _is_policy(document: dict[str, Any], name: str) -> bool:
    return document.get("kind") == _POLICY_KIND and document.get("metadata", {}).get("name") == name


def _check_namespaces(broker_namespace: str, grant_namespace: str) -> None:
    """DNS labels only: the names go into CEL string literals, where a quote would be code."""
    for what, name in (("broker namespace", broker_namespace), ("grant namespace", grant_namespace)):
        if not _DNS_LABEL.fullmatch(name):
            raise InvalidInput(
                f"{what} {name!r} is not a DNS label",
                hint="Use lowercase letters, digits and '-', at most 63 characters (brokerNamespace, grantNamespace).",
            )
    if broker_namespace == grant_namespace:
        raise InvalidInput(
            f"the broker and grant namespaces are both {broker_namespace!r}",
            hint="Keep the broker's own account apart from the per-grant accounts: two namespaces.",
        )


def _admission_policy(spec: dict[str, Any], broker_namespace: str, grant_namespace: str) -> None:
    variables = {v["name"]: v for v in spec["variables"]}
    variables["brokerNamespace"]["expression"] = f"'{broker_namespace}'"
    variables["grantNamespace"]["expression"] = f"'{grant_namespace}'"
    protected = variables["protectedNamespaces"]
    protected["expression"] = _substitute(
        protected["expression"],
        {DEFAULT_BROKER_NAMESPACE: broker_namespace, DEFAULT_GRANT_NAMESPACE: grant_namespace},
    )
    (identity,) = spec["matchConditions"]
    identity["expression"] = _substitute(
        identity["expression"],
        {
            _account(DEFAULT_BROKER_NAMESPACE): _account(broker_namespace),
            _accounts(DEFAULT_BROKER_NAMESPACE): _accounts(broker_namespace),
        },
    )


def _account(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{BROKER_ACCOUNT}"


def _accounts(namespace: str) -> str:
    """The group of every ServiceAccount in ``namespace``."""
    return f"system:serviceaccounts:{namespace}"


def _substitute(expression: str, literals: dict[str, str]) -> str:
    """Replace each CEL string literal ``'shipped'`` by ``'configured'``, all at once (a configured
    name may be another's shipped one). Each must be there exactly once: a changed manifest is an error."""
    for shipped in literals:
        if expression.count(f"'{shipped}'") != 1:
            raise ValueError(
                f"the shipped admission policy has not exactly one '{shipped}' in {expression!r}"
            )
    pattern = "|".join(re.escape(f"'{shipped}'") for shipped in literals)
    return re.sub(pattern, lambda m: f"'{literals[m.group(0)[1:-1]]}'", expression)


#: The subject check of the shipped admission policy, found by its message.
_SA_SUBJECT_MESSAGE = "a kubejit binding may only bind its own grant's ServiceAccount in the grant namespace"
_GROUP_SUBJECT_RULE = {
    "expression": (
        "!(variables.binding && variables.creating) ||\n"
        "(has(object.subjects) && object.subjects.size() == 1 &&\n"
        " object.subjects[0].kind == 'Group' &&\n"
        " object.subjects[0].name == 'kubejit:grant:' + object.metadata.labels['kubejit.io/grant'])"
    ),
    "message": "a kubejit binding may only bind its own grant's group kubejit:grant:<grant>",
    "reason": "Forbidden",
}


def jwt_mode_manifest(documents: list[dict[str, Any]], *, grant_namespace: str) -> list[dict[str, Any]]:
    """The manifest for a cluster in jwt mode (built from the ServiceAccount mode's, a new list).

    The broker keeps its own account, ``create/get/list/delete rolebindings`` and ``bind`` on the
    roles; it loses every right on ServiceAccounts and TokenRequest (there are none to make), and
    the admission policy allows as a binding's one subject only that grant's own group.
    """
    built: list[dict[str, Any]] = []
    for document in copy.deepcopy(documents):
        metadata = document.get("metadata", {})
        if document.get("kind") in ("Role", "RoleBinding") and metadata.get("namespace") == grant_namespace:
            continue  # the per-grant ServiceAccounts' and TokenRequest's rights
        if _is_policy(document, BROKER_POLICY):
            rules = document["spec"]["validations"]
            found = [i for i, rule in enumerate(rules) if rule.get("message") == _SA_SUBJECT_MESSAGE]
            if len(found) != 1:
                raise ValueError("the shipped admission policy has not exactly one subject rule")
            rules[found[0]] = dict(_GROUP_SUBJECT_RULE)
            resource_rules = document["spec"]["matchConstraints"]["resourceRules"]
            document["spec"]["matchConstraints"]["resourceRules"] = [
                rule for rule in resource_rules if "serviceaccounts" not in rule["resources"]
            ]
        built.append(document)
    return built
