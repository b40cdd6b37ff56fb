"""Resource names as people type them (`pod`, `deploy`, `deployments.apps/scale`) → API group + plural.

RBAC rules name resources by API group and plural, so a question about `deploy` must become
(`apps`, `deployments`). The scanner answers offline, without the API's discovery documents, so the
built-in resources of Kubernetes (1.37) are listed here; anything else is written `plural.group`
(e.g. `widgets.example.com`), as kubectl also accepts.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from kubejit.errors import InvalidInput

# group → plural names (and kubectl short names after a colon), from `kubectl api-resources`.
_BUILT_IN: dict[str, str] = {
    "": "bindings componentstatuses:cs configmaps:cm endpoints:ep events:ev limitranges:limits "
    "namespaces:ns nodes:no persistentvolumeclaims:pvc persistentvolumes:pv pods:po podtemplates "
    "replicationcontrollers:rc resourcequotas:quota secrets serviceaccounts:sa services:svc "
    "users groups",  # the last two exist only for RBAC (impersonate)
    "admissionregistration.k8s.io": "mutatingadmissionpolicies mutatingadmissionpolicybindings "
    "mutatingwebhookconfigurations validatingadmissionpolicies validatingadmissionpolicybindings "
    "validatingwebhookconfigurations",
    "apiextensions.k8s.io": "customresourcedefinitions:crd:crds",
    "apiregistration.k8s.io": "apiservices",
    "apps": "controllerrevisions daemonsets:ds deployments:deploy replicasets:rs statefulsets:sts",
    "authentication.k8s.io": "selfsubjectreviews tokenreviews uids userextras",
    "authorization.k8s.io": "localsubjectaccessreviews selfsubjectaccessreviews "
    "selfsubjectrulesreviews subjectaccessreviews",
    "autoscaling": "horizontalpodautoscalers:hpa",
    "batch": "cronjobs:cj jobs",
    "certificates.k8s.io": "certificatesigningrequests:csr clustertrustbundles podcertificaterequests signers",
    "coordination.k8s.io": "leases",
    "discovery.k8s.io": "endpointslices",
    "flowcontrol.apiserver.k8s.io": "flowschemas prioritylevelconfigurations",
    "networking.k8s.io": "ingressclasses ingresses:ing ipaddresses:ip networkpolicies:netpol servicecidrs",
    "node.k8s.io": "runtimeclasses",
    "policy": "poddisruptionbudgets:pdb",
    "rbac.authorization.k8s.io": "clusterrolebindings clusterroles rolebindings roles",
    "resource.k8s.io": "deviceclasses devicetaintrules resourceclaims resourceclaimtemplates resourceslices",
    "scheduling.k8s.io": "priorityclasses:pc",
    "storage.k8s.io": "csidrivers csinodes csistoragecapacities storageclasses:sc volumeattachments "
    "volumeattributesclasses:vac",
    "storagemigration.k8s.io": "storageversionmigrations",
}

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_GROUP = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def _singular(plural: str) -> str:
    """`policies` → `policy`, `ingresses` → `ingress`, `pods` → `pod`: enough for the names above."""
    for ending, replacement in (("ies", "y"), ("sses", "ss"), ("uses", "us"), ("s", "")):
        if plural.endswith(ending):
            return plural[: -len(ending)] + replacement
    return plural


def _index() -> dict[str, tuple[str, str]]:
    """Alias (plural or short name) → (group, plural); the core group wins a clash (`events`)."""
    found: dict[str, tuple[str, str]] = {}
    for group in sorted(_BUILT_IN, key=lambda g: g != ""):
        for entry in _BUILT_IN[group].split():
            plural, *shorts = entry.split(":")
            for alias in (plural, *shorts, _singular(plural)):
                found.setdefault(alias, (group, plural))
    return found


_ALIASES = _index()
_GROUPS = frozenset(_BUILT_IN)


@dataclass(frozen=True)
class ResourceName:
    group: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        base = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{base}/{self.subresource}" if self.subresource else base


def parse_resource(text: str) -> ResourceName:
    """`pods`, `po`, `pods/exec`, `deployments.apps`, `widgets.example.com/status` → ResourceName."""
    spelled = text.strip().lower()
    head, slash, subresource = spelled.partition("/")
    if slash and not _NAME.fullmatch(subresource):
        raise _invalid(text)
    if head in _ALIASES:
        group, plural = _ALIASES[head]
        return ResourceName(group, plural, subresource)
    plural, _, group = head.partition(".")
    if not group or not _NAME.fullmatch(plural) or not _GROUP.fullmatch(group):
        raise _invalid(text)
    if group in _GROUPS or "." in group:
        known = _ALIASES.get(plural)
        return ResourceName(group, known[1] if known and known[0] == group else plural, subresource)
    raise _invalid(text)


def _invalid(text: str) -> InvalidInput:
    close = difflib.get_close_matches(text.strip().lower().partition("/")[0], list(_ALIASES), n=1)
    return InvalidInput(
        f"unknown resource '{text}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
        hint="Name a built-in resource (pods, secrets, deployments, ...), or write plural.group for "
        "others (widgets.example.com), optionally with /subresource (pods/exec).",
    )
