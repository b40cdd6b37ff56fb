"""The broker's RBAC and admission policy as Helm templates, generated from deploy/rbac.yaml.

Both charts carry it: ``deploy/helm/kubejit-target`` (every target cluster) and the broker chart
``deploy/helm/kubejit`` (the cluster the broker runs in). Hand-written copies would drift from the
manifest; instead ``broker_manifest`` (the same code ``install_broker`` applies) builds the documents
for two sentinel namespaces, and the sentinels become the charts' namespace values. The namespaces
appear inside CEL string literals too; the charts' schemas allow DNS labels only, as
``broker_manifest`` does, so a value can never be code there.

``scripts/rbac-charts`` writes the files; ``--check`` (and tests/integration/test_rbac_charts.py)
fails when a committed template is not what the manifest gives.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubejit.clusters.bootstrap import rbac_documents
from kubejit.config import CredentialMode

_BROKER_SENTINEL = "kjsentinel-broker-namespace"
_GRANT_SENTINEL = "kjsentinel-grant-namespace"
_BINDABLE_SENTINEL = "kjsentinel-bindable-cluster-roles"
_HEADER = """\
# GENERATED from src/kubejit/manifests/rbac.yaml (= deploy/rbac.yaml) by scripts/rbac-charts:
# do not edit; change the manifest and run scripts/rbac-charts (a test fails when they differ).
"""


@dataclass(frozen=True)
class ChartTarget:
    """Where one chart keeps the template, and the Helm expressions of its two namespaces."""

    path: str
    broker_namespace: str
    grant_namespace: str
    #: The Helm condition the whole file renders under.
    condition: str
    #: The broker chart has a ServiceAccount template of its own (annotations, automount).
    service_account: bool
    #: The Helm value listing the ClusterRoles the broker may bind (the manifest's by default).
    bindable: str
    #: The Helm value naming the cluster's credential mode (``serviceAccount`` or ``jwt``): the
    #: template then holds both manifests and renders that one. None: ServiceAccount mode only.
    mode: str | None = None


TARGETS = (
    ChartTarget(
        path="deploy/helm/kubejit-target/templates/broker-rbac.yaml",
        broker_namespace="{{ .Values.brokerNamespace }}",
        grant_namespace="{{ .Values.grantNamespace }}",
        condition='include "kubejit-target.checked" .',
        service_account=True,
        bindable=".Values.bindableClusterRoles",
        mode=".Values.credentialMode",
    ),
    ChartTarget(
        path="deploy/helm/kubejit/templates/broker-rbac.yaml",
        broker_namespace="{{ .Release.Namespace }}",
        grant_namespace="{{ .Values.config.grantNamespace }}",
        condition='include "kubejit.rbacEnabled" .',
        service_account=False,
        bindable=".Values.rbac.bindableClusterRoles",
        mode='(include "kubejit.inClusterMode" .)',
    ),
)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the CEL expressions) as literal blocks, readable in the chart."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def chart_template(target: ChartTarget) -> str:
    """The template file for ``target``: the manifest's documents with its namespace expressions."""
    body = _body(target, "serviceAccount")
    if target.mode is not None:  # both modes' manifests, the value picks one
        jwt = _body(target, "jwt")
        body = f'{{{{- if eq {target.mode} "jwt" }}}}\n{jwt}{{{{- else }}}}\n{body}{{{{- end }}}}\n'
    return f"{_HEADER}{{{{- if {target.condition} }}}}\n{body}{{{{- end }}}}\n"


def _body(target: ChartTarget, mode: CredentialMode) -> str:
    documents: list[dict[str, Any]] = rbac_documents(
        broker_namespace=_BROKER_SENTINEL, grant_namespace=_GRANT_SENTINEL, mode=mode
    )
    if not target.service_account:
        documents = [d for d in documents if d["kind"] != "ServiceAccount"]
    _bind_rule(documents)["resourceNames"] = _BINDABLE_SENTINEL
    body = "---\n".join(yaml.dump(d, Dumper=_BlockDumper, sort_keys=False, width=10_000) for d in documents)
    if "{{" in body or "}}" in body:
        raise ValueError("the shipped manifest holds '{{' or '}}', which Helm would read as a template")
    body = body.replace(_BROKER_SENTINEL, target.broker_namespace)
    body = body.replace(_GRANT_SENTINEL, target.grant_namespace)
    return body.replace(_BINDABLE_SENTINEL, f"{{{{ toJson {target.bindable} }}}}")


def bindable_cluster_roles(documents: list[dict[str, Any]]) -> list[str]:
    """The ClusterRoles the manifest lets the broker bind (its `bind` rule): the charts' default."""
    return list(_bind_rule(documents)["resourceNames"])


def _bind_rule(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The broker ClusterRole's one rule with ``bind`` on ``clusterroles`` (the policy's roles)."""
    (role,) = (
        d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "kubejit-broker"
    )
    (rule,) = (r for r in role["rules"] if "bind" in r["verbs"] and "clusterroles" in r["resources"])
    return rule  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the charts' broker-rbac.yaml.")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository's root")
    parser.add_argument("--check", action="store_true", help="only report templates that differ")
    args = parser.parse_args(argv)
    stale = []
    for target in TARGETS:
        path = args.root / target.path
        wanted = chart_template(target)
        if path.exists() and path.read_text() == wanted:
            continue
        if args.check:
            stale.append(target.path)
        else:
            path.write_text(wanted)
            print(f"wrote {target.path}")
    if stale:
        print(
            f"error: {', '.join(stale)} differ from deploy/rbac.yaml: run scripts/rbac-charts",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
