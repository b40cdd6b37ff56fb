"""``KubeClusterAdapter``: the one place kubejit talks to a Kubernetes API server.

It sends what ``objects.py`` builds, idempotently (create-or-get, delete-if-exists), so a call can be
retried after any crash. It acts with the broker's own least-privilege identity (deploy/rbac.yaml):
it never needs to hold the roles it grants, only ``bind`` on them. A failed activation removes what
that call created, so a refused grant leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import NamedTuple, TypeVar

from lightkube import ALL_NS, ApiError, Client, ConfigError, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding, Role, RoleBinding

from kubejit import errors
from kubejit.clusters.errors import cluster_error, is_already_exists, is_not_found, translated
from kubejit.clusters.objects import (
    FIELD_MANAGER,
    GRANT_LABEL,
    is_grant_id,
    managed_selector,
    object_name,
    ownership_labels,
    role_bindings_for,
    service_account_for,
    token_request_for,
)
from kubejit.grants.model import Grant
from kubejit.grants.ports import MintedToken, OwnedObject
from kubejit.ids import ClusterName, GrantId

log = logging.getLogger(__name__)
T = TypeVar("T")

KubeObject = ServiceAccount | RoleBinding | ClusterRoleBinding


class ClusterEndpoint(NamedTuple):
    """What a kubeconfig needs to reach the cluster: the server URL and its CA (base64 PEM, or None)."""

    server: str
    certificate_authority_data: str | None


class KubeClusterAdapter:
    """One cluster, reached with a sync lightkube ``Client`` acting as the broker."""

    uses_service_accounts = True

    def __init__(self, name: str, *, client: Client, grant_namespace: str, audience: str | None) -> None:
        self.name = ClusterName(name)
        self.grant_namespace = grant_namespace
        #: None: tokens carry the API server's own audiences.
        self.audience = audience
        self._client = client
        self._warned_cluster_scope = False
        #: Activation sends its creates side by side: one round trip instead of one per object.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"kubejit-{name}")

    @classmethod
    def from_kubeconfig(
        cls,
        name: str,
        *,
        kubeconfig: str,
        context: str | None = None,
        grant_namespace: str,
        audience: str | None,
    ) -> KubeClusterAdapter:
        """An adapter using a kubeconfig file (its current context unless ``context`` is given)."""
        client = client_from_kubeconfig(name, kubeconfig=kubeconfig, context=context)
        return cls(name, client=client, grant_namespace=grant_namespace, audience=audience)

    @classmethod
    def in_cluster(cls, name: str, *, grant_namespace: str, audience: str | None) -> KubeClusterAdapter:
        """An adapter using the pod's own ServiceAccount (the broker running inside the cluster)."""
        return cls(name, client=client_in_cluster(name), grant_namespace=grant_namespace, audience=audience)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> KubeClusterAdapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the ClusterAdapter port -----------------------------------------------------------------
    def ensure_grant_objects(self, grant: Grant) -> None:
        """Create (or find) the grant's ServiceAccount and its bindings, all at once.

        A binding may name a ServiceAccount that does not exist yet, so nothing orders these calls.
        A missing target namespace shows as a 404 on its binding. On a permanent failure the objects
        this call created are removed again (a transient one leaves them for the retry to find).
        """
        self._check_cluster(grant)
        wanted = self._wanted(grant)
        created: list[KubeObject] = []
        futures = [self._pool.submit(self._ensure, obj, created=created) for obj in wanted]
        failures = [e for f in futures if isinstance(e := f.exception(), BaseException)]
        if not failures:
            return
        permanent = [e for e in failures if not isinstance(e, errors.ClusterUnavailable)]
        if permanent:
            self._undo(created)
        raise (permanent or failures)[0]

    def _wanted(self, grant: Grant) -> list[KubeObject]:
        """What a live grant has in the cluster: its ServiceAccount and the bindings naming it."""
        return [
            service_account_for(grant, namespace=self.grant_namespace),
            *role_bindings_for(grant, sa_namespace=self.grant_namespace),
        ]

    def delete_grant_objects(self, grant_id: GrantId) -> None:
        """Delete the grant's bindings first (access ends at once), then its ServiceAccount.

        Found by label, not by name, so whatever a crash left half-made goes too; the three lists
        and then the binding deletes are sent side by side.
        """
        selector = ownership_labels(grant_id)
        rbs = self._pool.submit(self._list_role_bindings, selector)
        crbs = self._pool.submit(self._list_cluster_role_bindings, selector)
        sas = self._list_service_accounts(selector)
        bindings: list[KubeObject] = [*rbs.result(), *crbs.result()]
        self._all([partial(self._delete, binding) for binding in bindings])
        for sa in sas:
            self._delete(sa)

    def mint_token(self, grant: Grant, *, expiration_seconds: int) -> MintedToken:
        """A TokenRequest token for the grant's account; it dies with the account, whatever its expiry."""
        self._check_cluster(grant)
        request = token_request_for(grant, audience=self.audience, expiration_seconds=expiration_seconds)
        name = object_name(grant.id)
        try:
            with translated(
                cluster=self.name, action=f"create a token for ServiceAccount {name}", passing=(404,)
            ):
                answer = self._client.create(request, name, namespace=self.grant_namespace)
        except ApiError as e:
            raise errors.ClusterError(
                f"grant {grant.id} has no ServiceAccount in cluster '{self.name}'",
                hint="The reconciler restores it; retry in a moment.",
            ) from e
        if answer.status is None or not answer.status.token or answer.status.expirationTimestamp is None:
            raise errors.ClusterError(f"cluster '{self.name}' answered a TokenRequest without a token")
        token = answer.status.token
        return MintedToken(
            token=token, expires_at=answer.status.expirationTimestamp, token_id=token_id(token)
        )

    def list_owned(self) -> list[OwnedObject]:
        """Everything labelled as kubejit's in this cluster, for the reconciler."""
        selector = managed_selector()
        found: list[KubeObject] = [
            *self._list_service_accounts(selector),
            *self._list_role_bindings(selector),
            *self._list_cluster_role_bindings(selector),
        ]
        return [owned for obj in found if (owned := _owned(obj)) is not None]

    # -- for kubeconfig generation and request validation -----------------------------------------
    def server_info(self) -> ClusterEndpoint:
        """The API server URL and CA, as this adapter reaches them, for users' kubeconfigs."""
        config = self._client.config
        cluster = config.cluster
        if cluster.certificate_auth_data:
            return ClusterEndpoint(cluster.server, cluster.certificate_auth_data)
        if cluster.certificate_auth:
            pem = Path(config.abs_file(cluster.certificate_auth)).read_bytes()
            return ClusterEndpoint(cluster.server, base64.b64encode(pem).decode())
        return ClusterEndpoint(cluster.server, None)

    def namespace_exists(self, namespace: str) -> bool:
        try:
            with translated(cluster=self.name, action=f"get namespace {namespace}", passing=(404,)):
                self._client.get(Namespace, namespace)
        except ApiError:
            return False
        return True

    def role_rules(self, *, kind: str, name: str, namespace: str | None) -> list[dict[str, list[str]]]:
        """What a Role (in ``namespace``) or ClusterRole allows, as its rules: for approvers to read."""
        action = f"get {kind} {name}" + (f" in {namespace}" if kind == "Role" else "")
        with translated(cluster=self.name, action=action):
            if kind == "Role":
                found: Role | ClusterRole = self._client.get(Role, name, namespace=namespace)
            else:
                found = self._client.get(ClusterRole, name)
        return [
            {
                "verbs": list(r.verbs or []),
                "apiGroups": list(r.apiGroups or []),
                "resources": list(r.resources or []),
                "resourceNames": list(r.resourceNames or []),
                "nonResourceURLs": list(r.nonResourceURLs or []),
            }
            for r in found.rules or []
        ]

    # -- internals ---------------------------------------------------------------------------------
    def _all(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run the calls side by side; the first failure (in call order) is raised after all end."""
        futures = [self._pool.submit(call) for call in calls]
        for future in futures:
            future.exception()  # wait for every call before raising any error
        return [future.result() for future in futures]

    def _check_cluster(self, grant: Grant) -> None:
        if grant.cluster != self.name:
            raise errors.ClusterError(
                f"grant {grant.id} is for cluster '{grant.cluster}', not '{self.name}'",
                hint="This is a bug in the caller: grants must be sent to their own cluster's adapter.",
            )

    def _ensure(self, obj: KubeObject, *, created: list[KubeObject]) -> None:
        """Create ``obj``; if it already exists, accept it only when it is the same grant's object."""
        action = f"create {_describe(obj)}"
        try:
            with translated(cluster=self.name, action=action, passing=(404, 409)):
                self._create(obj)
        except ApiError as e:
            if is_not_found(e):
                raise _missing_namespace(
                    _namespace(obj), cluster=self.name, grant_ns=self.grant_namespace
                ) from e
            if not is_already_exists(e):
                raise cluster_error(e, cluster=self.name, action=action) from e
            self._check_existing(obj)
            return
        created.append(obj)
        log.info("cluster %s: created %s", self.name, _describe(obj))

    def _create(self, obj: KubeObject) -> None:
        if isinstance(obj, ClusterRoleBinding):
            self._client.create(obj, field_manager=FIELD_MANAGER)
        else:
            self._client.create(obj, namespace=_namespace(obj), field_manager=FIELD_MANAGER)

    def _check_existing(self, wanted: KubeObject) -> None:
        """An existing object with our name must be ours, and a binding must bind the same thing."""
        with translated(cluster=self.name, action=f"get {_describe(wanted)}"):
            found = self._get(wanted)
        want_grant = _labels(wanted).get(GRANT_LABEL)
        same = _labels(found).get(GRANT_LABEL) == want_grant
        if same and not isinstance(wanted, ServiceAccount) and not isinstance(found, ServiceAccount):
            same = found.roleRef == wanted.roleRef and found.subjects == wanted.subjects
        if not same:
            raise errors.ClusterConflict(
                f"{_describe(wanted)} already exists in cluster '{self.name}' but is not grant "
                f"{want_grant}'s, or binds something else",
                hint="Delete the stray object (kubejit never overwrites what it did not create exactly).",
            )

    def _get(self, obj: KubeObject) -> KubeObject:
        name = _name(obj)
        if isinstance(obj, ClusterRoleBinding):
            return self._client.get(ClusterRoleBinding, name)
        if isinstance(obj, RoleBinding):
            return self._client.get(RoleBinding, name, namespace=_namespace(obj))
        return self._client.get(ServiceAccount, name, namespace=_namespace(obj))

    def _delete(self, obj: KubeObject) -> None:
        """Delete-if-exists: an object already gone is what we wanted."""
        try:
            with translated(cluster=self.name, action=f"delete {_describe(obj)}", passing=(404,)):
                if isinstance(obj, ClusterRoleBinding):
                    self._client.delete(ClusterRoleBinding, _name(obj))
                else:
                    self._client.delete(type(obj), _name(obj), namespace=_namespace(obj))
        except ApiError:
            return
        log.info("cluster %s: deleted %s", self.name, _describe(obj))

    def _undo(self, created: list[KubeObject]) -> None:
        """Bindings first, then the ServiceAccount: access ends before its holder does."""
        for obj in sorted(created, key=lambda o: isinstance(o, ServiceAccount)):
            try:
                self._delete(obj)
            except errors.ClusterError as e:  # the reconciler removes it later, by its labels
                log.warning(
                    "cluster %s: could not remove %s after a failure: %s", self.name, _describe(obj), e
                )

    def _list_service_accounts(self, selector: Mapping[str, str]) -> list[ServiceAccount]:
        with translated(cluster=self.name, action=f"list ServiceAccounts in {self.grant_namespace}"):
            return list(
                self._client.list(ServiceAccount, namespace=self.grant_namespace, labels=dict(selector))
            )

    def _list_role_bindings(self, selector: Mapping[str, str]) -> list[RoleBinding]:
        with translated(cluster=self.name, action="list RoleBindings in all namespaces"):
            return list(self._client.list(RoleBinding, namespace=ALL_NS, labels=dict(selector)))

    def _list_cluster_role_bindings(self, selector: Mapping[str, str]) -> list[ClusterRoleBinding]:
        """ClusterRoleBindings, if the broker may see them: without that optional permission it cannot
        have created any (see deploy/rbac.yaml), so there is nothing to find."""
        try:
            with translated(cluster=self.name, action="list ClusterRoleBindings"):
                return list(self._client.list(ClusterRoleBinding, labels=dict(selector)))
        except errors.ClusterForbidden:
            if not self._warned_cluster_scope:
                log.info(
                    "cluster %s: broker may not list ClusterRoleBindings; cluster-scoped grants off",
                    self.name,
                )
                self._warned_cluster_scope = True
            return []


def token_id(token: str) -> str:
    """The token's ``jti`` (what the API server's audit log records as its credential id), read
    WITHOUT verifying the signature: the API server just issued it. Falls back to a hash prefix."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        claims = None
    jti = claims.get("jti") if isinstance(claims, dict) else None
    if isinstance(jti, str) and jti:
        return jti
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def client_from_kubeconfig(name: str, *, kubeconfig: str, context: str | None = None) -> Client:
    """The broker's client for cluster ``name`` from a kubeconfig file."""
    try:
        config = KubeConfig.from_file(kubeconfig).get(context)
    except (ConfigError, OSError, ValueError, KeyError) as e:
        raise errors.ConfigError(
            f"cannot use kubeconfig '{kubeconfig}' for cluster '{name}': {e}",
            hint="Check the file path and the context name in the cluster's configuration.",
        ) from e
    return _client(config)


def client_in_cluster(name: str) -> Client:
    """The broker's client from the pod's own ServiceAccount."""
    try:
        config = KubeConfig.from_service_account().get()
    except (ConfigError, KeyError) as e:
        raise errors.ConfigError(
            f"cluster '{name}' is configured in-cluster, but this process is not running in a pod: {e}",
            hint="Give the cluster a kubeconfig instead, or run the broker inside that cluster.",
        ) from e
    return _client(config)


def _client(config: SingleConfig | None) -> Client:
    if config is None:  # KubeConfig.get() without a default never answers None; keep mypy honest
        raise errors.ConfigError("the kubeconfig selects no context")
    return Client(config=config, field_manager=FIELD_MANAGER)


def _missing_namespace(namespace: str, *, cluster: str, grant_ns: str | None = None) -> errors.ClusterError:
    if namespace == grant_ns:
        return errors.ClusterError(
            f"the broker's grant namespace '{namespace}' does not exist in cluster '{cluster}'",
            hint=f"Create it (`kubectl create namespace {namespace}`) and apply deploy/rbac.yaml.",
        )
    return errors.ClusterError(
        f"namespace '{namespace}' does not exist in cluster '{cluster}'",
        hint="Request access to an existing namespace, or ask its owners to create it first.",
    )


def _owned(obj: KubeObject) -> OwnedObject | None:
    grant = _labels(obj).get(GRANT_LABEL)
    if not grant or not is_grant_id(grant):  # labelled by someone else: not kubejit's to reconcile
        log.warning("ignoring %s: managed-by kubejit, but no valid grant label", _describe(obj))
        return None
    namespace = None if isinstance(obj, ClusterRoleBinding) else _namespace(obj)
    return OwnedObject(kind=type(obj).__name__, namespace=namespace, name=_name(obj), grant_id=GrantId(grant))


def _describe(obj: KubeObject) -> str:
    if isinstance(obj, ClusterRoleBinding):
        return f"ClusterRoleBinding {_name(obj)}"
    return f"{type(obj).__name__} {_namespace(obj)}/{_name(obj)}"


def _labels(obj: KubeObject) -> dict[str, str]:
    return dict(obj.metadata.labels or {}) if obj.metadata else {}


def _name(obj: KubeObject) -> str:
    assert obj.metadata is not None and obj.metadata.name is not None  # set by objects.py or the server
    return obj.metadata.name


def _namespace(obj: KubeObject) -> str:
    assert obj.metadata is not None and obj.metadata.namespace is not None
    return obj.metadata.namespace
