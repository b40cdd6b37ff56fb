"""Join the API server's own audit log to kubejit grants: who, under which grant, did what (pure).

kube-apiserver records, for each request made with a ServiceAccount token, the token's ``jti``
(``user.extra["authentication.kubernetes.io/credential-id"] = ["JTI=<jti>"]``), the
ServiceAccount's uid (``user.uid``) and its name (``user.username``). kubejit recorded the first
two when it minted the token, and names every ServiceAccount after its grant, so each request
finds its grant by the strongest key available: jti, then uid, then name.

A cluster in jwt mode sees kubejit's own token instead: the username is the person (under the
configured prefix) and the one group is the grant's, ``kubejit:grant:<id>``, which only a token the
broker signed can carry; requests are matched on that group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubejit.audit.access_history import GrantRecord

CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
#: Stages that describe a finished request; RequestReceived would count each request twice.
_FINAL_STAGES = {"ResponseComplete", "Panic"}
SA_PREFIX = "system:serviceaccount:"
#: The group of a jwt-mode grant (identity/cluster_tokens.py says the same; audit imports no identity).
GRANT_GROUP_PREFIX = "kubejit:grant:"


@dataclass(frozen=True)
class KubeRequest:
    """One request from the API server's audit log, reduced to what correlation shows."""

    audit_id: str
    at: str
    verb: str
    uri: str
    username: str
    uid: str | None
    jti: str | None
    namespace: str | None
    resource: str | None
    name: str | None
    code: int | None
    source_ips: tuple[str, ...]
    user_agent: str
    groups: tuple[str, ...] = ()

    @property
    def grant_group_ids(self) -> list[str]:
        """The grant ids of the jwt-mode grant groups the caller was authenticated with."""
        return [g[len(GRANT_GROUP_PREFIX) :] for g in self.groups if g.startswith(GRANT_GROUP_PREFIX)]

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) when the caller is a ServiceAccount."""
        if not self.username.startswith(SA_PREFIX):
            return None
        namespace, _, name = self.username[len(SA_PREFIX) :].partition(":")
        return (namespace, name) if name else None


@dataclass(frozen=True)
class Correlated:
    request: KubeRequest
    grant: GrantRecord
    matched_by: str  # jti | serviceaccount-uid | grant-group | serviceaccount-name

    def to_dict(self) -> dict[str, Any]:
        r, g = self.request, self.grant
        return {
            "at": r.at,
            "person": g.person,
            "grant_id": g.grant_id,
            "reason": g.reason,
            "ticket": g.ticket,
            "approvers": g.approvers,
            "break_glass": g.break_glass,
            "verb": r.verb,
            "resource": r.resource,
            "namespace": r.namespace,
            "name": r.name,
            "uri": r.uri,
            "code": r.code,
            "kubernetes_user": r.username,
            "source_ips": list(r.source_ips),
            "user_agent": r.user_agent,
            "audit_id": r.audit_id,
            "matched_by": self.matched_by,
        }


class MalformedAuditLine(ValueError):
    def __init__(self, line_no: int, why: str) -> None:
        super().__init__(f"line {line_no}: {why}")
        self.line_no = line_no


def parse_audit_log(lines: Iterable[str]) -> Iterator[KubeRequest]:
    """Finished requests from audit.k8s.io/v1 JSON lines; blank lines skipped, bad ones refused."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            raise MalformedAuditLine(
                line_no, "not JSON (expected one audit.k8s.io/v1 Event per line)"
            ) from None
        if not isinstance(raw, dict) or raw.get("kind") != "Event":
            raise MalformedAuditLine(line_no, "not an audit.k8s.io Event")
        if raw.get("stage") in _FINAL_STAGES:
            try:
                request = _request(raw)
            except (AttributeError, TypeError):  # a field of the wrong shape (a string for a map)
                raise MalformedAuditLine(line_no, "an audit.k8s.io Event with a malformed field") from None
            yield request


def _request(raw: Mapping[str, Any]) -> KubeRequest:
    user = raw.get("user") or {}
    extra = user.get("extra") or {}
    ref = raw.get("objectRef") or {}
    status = raw.get("responseStatus") or {}
    return KubeRequest(
        audit_id=str(raw.get("auditID", "")),
        at=str(raw.get("requestReceivedTimestamp") or raw.get("stageTimestamp") or ""),
        verb=str(raw.get("verb", "")),
        uri=str(raw.get("requestURI", "")),
        username=str(user.get("username", "")),
        uid=user.get("uid") or None,
        jti=_jti(extra.get(CREDENTIAL_ID)),
        namespace=ref.get("namespace"),
        resource=ref.get("resource"),
        name=ref.get("name"),
        code=status.get("code"),
        source_ips=tuple(str(ip) for ip in raw.get("sourceIPs") or ()),
        user_agent=str(raw.get("userAgent", "")),
        groups=tuple(str(g) for g in user.get("groups") or () if isinstance(g, str)),
    )


def _jti(values: object) -> str | None:
    for value in values if isinstance(values, list) else ():
        if isinstance(value, str) and value.startswith("JTI="):
            return value[4:]
    return None


class GrantIndex:
    """Grants by every key a request can be matched on."""

    def __init__(self, records: Iterable[GrantRecord], *, grant_namespace: str | None = None) -> None:
        self.by_jti: dict[str, GrantRecord] = {}
        self.by_uid: dict[str, GrantRecord] = {}
        self.by_account: dict[str, GrantRecord] = {}
        self.by_id: dict[str, GrantRecord] = {}
        self.grant_namespace = grant_namespace
        for record in records:
            self.by_id[record.grant_id] = record
            self.by_jti.update(dict.fromkeys(record.token_ids, record))
            self.by_uid.update(dict.fromkeys(record.service_account_uids, record))
            self.by_account[record.service_account] = record

    def match(self, request: KubeRequest) -> tuple[GrantRecord, str] | None:
        if request.jti and request.jti in self.by_jti:
            return self.by_jti[request.jti], "jti"
        if request.uid and request.uid in self.by_uid:
            return self.by_uid[request.uid], "serviceaccount-uid"
        grouped = [self.by_id[g] for g in request.grant_group_ids if g in self.by_id]
        if len(grouped) == 1:  # kubejit's tokens carry exactly one grant group
            return grouped[0], "grant-group"
        account = request.service_account
        if account is None or (self.grant_namespace and account[0] != self.grant_namespace):
            return None
        record = self.by_account.get(account[1])
        return (record, "serviceaccount-name") if record else None


def correlate(requests: Iterable[KubeRequest], index: GrantIndex) -> Iterator[Correlated]:
    """Each request made with a kubejit grant's credentials, with its grant; others are skipped."""
    for request in requests:
        found = index.match(request)
        if found is not None:
            yield Correlated(request, *found)
