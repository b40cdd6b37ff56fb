"""From a kubectl "Forbidden" to the `kubejit request` that would allow it (request from the point of
denial).

kubectl never runs the credential plugin on a 403, so kubejit cannot speak up by itself there;
``kubectl jit why`` reads kubectl's error instead. The API server names the ServiceAccount
(``kubejit-<grant>``), the verb, the resource and the namespace: enough to find the grant and to
word the request. Pure: text and a grant in, a message out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]+)" cannot (?P<verb>[a-z]+) resource "(?P<resource>[^"]+)" in API group '
    r'"(?P<group>[^"]*)"(?: in the namespace "(?P<namespace>[^"]+)"| at the cluster scope)'
)
_GRANT_USER = re.compile(r"^system:serviceaccount:[a-z0-9-]+:kubejit-(?P<grant>[a-z0-9][-a-z0-9]*)$")


@dataclass(frozen=True)
class Denial:
    user: str
    verb: str
    resource: str
    group: str
    namespace: str | None
    #: jwt mode: the grant of the kubectl context that was refused (the error names the person).
    context_grant: str | None = None

    @property
    def grant_id(self) -> str | None:
        """The grant whose ServiceAccount (or, in jwt mode, whose context) was refused; None when it
        is not a kubejit identity."""
        match = _GRANT_USER.match(self.user)
        return match["grant"] if match else self.context_grant

    @property
    def what(self) -> str:
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f"in namespace {self.namespace}" if self.namespace else "at cluster scope"
        return f"{self.verb} {resource} {where}"


def find_denials(text: str) -> list[Denial]:
    """Every distinct Forbidden in kubectl's output, in order."""
    found: dict[Denial, None] = {}
    for match in _FORBIDDEN.finditer(text):
        found[Denial(match["user"], match["verb"], match["resource"], match["group"], match["namespace"])] = (
            None
        )
    return list(found)


def request_for(grant: Mapping[str, Any], denial: Denial) -> tuple[str, str]:
    """(what happened, the command that would get the access) for a denial of this grant's identity."""
    base = f"kubejit request --cluster {grant['cluster']}"
    reason = f'--reason "{denial.what}"'
    if grant["state"] != "active":
        namespaces = " ".join(f"--namespace {ns}" for ns in grant["namespaces"])
        return (
            f"grant {grant['id']} is {grant['state']}",
            f"{base} {namespaces} --role {grant['role']} {reason}",
        )
    wide = not grant["namespaces"]  # a cluster-wide role covers every namespace
    if denial.namespace is not None and not wide and denial.namespace not in grant["namespaces"]:
        return (
            f"grant {grant['id']} ({grant['role']}) covers {', '.join(grant['namespaces'])}, "
            f"not {denial.namespace}",
            f"{base} --namespace {denial.namespace} --role {grant['role']} {reason}",
        )
    namespace = denial.namespace or (None if wide else grant["namespaces"][0])
    where = f" --namespace {namespace}" if namespace else ""
    return (
        f"role {grant['role']} of grant {grant['id']} does not allow {denial.what}",
        f"{base}{where} --role ROLE {reason}   (ROLE: one that allows it; "
        "`kubejit whoami` lists what you may request)",
    )
