"""A ``ScanReport`` as data for machines: plain JSON, and SARIF 2.1.0 for code-scanning dashboards.

Both are built as dicts (the caller serialises them), so they are tested by value. Findings are about
cluster objects, not files: in SARIF each result carries a logical location (the object's API path)
and a physical one relative to the ``CLUSTER`` base, which SARIF viewers such as GitHub code scanning
need to list a result. ``partialFingerprints`` stay stable across scans, so a dashboard tracks one
finding over time instead of seeing a new one on every run.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kubejit import __version__
from kubejit.clusters.scan.findings import RULES, Finding, ScanReport, Severity
from kubejit.clusters.scan.model import ObjectRef, Subject
from kubejit.clusters.scan.rbac import Access, Matrix, ResourceRequest

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
_LEVEL = {Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
# GitHub ranks results by this property (0-10): high >= 7, medium 4-6.9, low < 4.
_SECURITY_SEVERITY = {Severity.HIGH: "8.0", Severity.MEDIUM: "5.5", Severity.LOW: "3.0"}


def _object(ref: ObjectRef) -> dict[str, Any]:
    return {"kind": ref.kind, "namespace": ref.namespace or None, "name": ref.name, "path": ref.path}


def _subject(subject: Subject) -> dict[str, Any]:
    return {"kind": subject.kind, "name": subject.name, "namespace": subject.namespace or None}


def finding_data(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule,
        "severity": finding.severity.value,
        "object": _object(finding.object),
        "message": finding.message,
        "subjects": [_subject(s) for s in finding.subjects],
        "role": _object(finding.role) if finding.role else None,
        "age_days": finding.age_days,
    }


def report_data(report: ScanReport) -> dict[str, Any]:
    """The JSON document of ``kubejit scan -o json`` (inside the kubejit.io/v1 envelope)."""
    return {
        "cluster": report.cluster,
        "scanned_at": report.scanned_at.isoformat(),
        "objects": dict(report.counts),
        "summary": report.summary(),
        "findings": [finding_data(f) for f in report.findings],
    }


def _sarif_rule(rule_id: str) -> dict[str, Any]:
    info = RULES[rule_id]
    severity = info.severity
    return {
        "id": rule_id,
        "name": "".join(part.capitalize() for part in rule_id.split("-")),
        "shortDescription": {"text": info.title},
        "fullDescription": {"text": f"{info.title}. {info.help}"},
        "help": {"text": info.help},
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "properties": {
            "tags": ["security", "kubernetes", "rbac"],
            "security-severity": _SECURITY_SEVERITY[severity],
        },
    }


def _fingerprint(finding: Finding, cluster: str) -> str:
    identity = "\x00".join((cluster, finding.rule, finding.object.path))
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _sarif_result(finding: Finding, *, index: int, cluster: str) -> dict[str, Any]:
    ref = finding.object
    return {
        "ruleId": finding.rule,
        "ruleIndex": index,
        "level": _LEVEL[finding.severity],
        "message": {"text": finding.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": ref.path.lstrip("/"), "uriBaseId": "CLUSTER"}
                },
                "logicalLocations": [{"name": ref.name, "fullyQualifiedName": ref.path, "kind": "resource"}],
            }
        ],
        "partialFingerprints": {"kubejitObject/v1": _fingerprint(finding, cluster)},
        "properties": {
            "severity": finding.severity.value,
            "security-severity": _SECURITY_SEVERITY[finding.severity],
            "subjects": [str(s) for s in finding.subjects],
        },
    }


def sarif(report: ScanReport) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run: every rule described, every finding a result."""
    rule_ids = list(RULES)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "kubejit",
                        "semanticVersion": __version__,
                        "rules": [_sarif_rule(rule_id) for rule_id in rule_ids],
                    }
                },
                "originalUriBaseIds": {
                    "CLUSTER": {"description": {"text": f"The API of Kubernetes cluster {report.cluster!r}"}}
                },
                "invocations": [{"executionSuccessful": True, "endTimeUtc": report.scanned_at.isoformat()}],
                "results": [
                    _sarif_result(f, index=rule_ids.index(f.rule), cluster=report.cluster)
                    for f in report.findings
                ],
                "properties": {"cluster": report.cluster, "objects": dict(report.counts)},
            }
        ],
    }


def who_can_data(
    cluster: str,
    request: ResourceRequest,
    found: list[Access],
    *,
    defaults: frozenset[ObjectRef] = frozenset(),
) -> dict[str, Any]:
    """The JSON document of ``kubejit who-can -o json``; ``defaults``: Kubernetes' own bindings."""
    return {
        "cluster": cluster,
        "verb": request.verb,
        "resource": str(request.resource),
        "namespace": request.namespace or None,
        "access": [
            {
                "subject": _subject(a.subject),
                "binding": _object(a.binding),
                "role": _object(a.role),
                "default": a.binding in defaults,
            }
            for a in found
        ],
    }


def matrix_data(cluster: str, table: Matrix) -> dict[str, Any]:
    """The JSON document of ``kubejit who-can --matrix -o json``."""
    return {
        "cluster": cluster,
        "namespace": table.namespace or None,
        "verbs": list(table.verbs),
        "resources": [str(r) for r in table.resources],
        "subjects": [
            {"subject": _subject(subject), "access": {res: list(verbs) for res, verbs in row.items()}}
            for subject, row in table.cells.items()
        ],
    }
