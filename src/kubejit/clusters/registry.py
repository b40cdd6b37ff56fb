"""The clusters the broker serves, by name, and how an adapter is built from one config entry.

The registry is a read-only ``Mapping`` (what ``GrantService`` takes), so ``registry[name]`` keeps
the ``KeyError`` contract; ``registry.adapter(name)`` is the lookup that answers a user with the
known names. Config parsing itself lives in ``kubejit.config``; this module only receives its values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from kubejit.clusters.adapter import KubeClusterAdapter, client_from_kubeconfig, client_in_cluster
from kubejit.clusters.jwt_adapter import JwtClusterAdapter
from kubejit.errors import ConfigError, NotFound
from kubejit.grants.ports import ClusterAdapter
from kubejit.identity.cluster_tokens import ClusterTokenIssuer
from kubejit.ids import ClusterName


class ClusterRegistry(Mapping[str, ClusterAdapter]):
    """Cluster name → adapter; names are unique, and each adapter answers to its own name."""

    def __init__(self, adapters: Iterable[ClusterAdapter] = ()) -> None:
        self._adapters: dict[str, ClusterAdapter] = {}
        for adapter in adapters:
            if adapter.name in self._adapters:
                raise ConfigError(
                    f"cluster '{adapter.name}' is configured twice",
                    hint="Give every cluster entry a unique name.",
                )
            self._adapters[adapter.name] = adapter

    def adapter(self, name: str) -> ClusterAdapter:
        """The adapter of cluster ``name``, or ``NotFound`` naming the clusters that do exist."""
        try:
            return self._adapters[name]
        except KeyError:
            known = ", ".join(sorted(self._adapters)) or "none configured"
            raise NotFound(
                f"unknown cluster '{name}' (known: {known})",
                hint="List the clusters with `kubejit clusters`.",
            ) from None

    @property
    def names(self) -> list[ClusterName]:
        return [ClusterName(name) for name in sorted(self._adapters)]

    def __getitem__(self, name: str) -> ClusterAdapter:
        return self._adapters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)

    def close(self) -> None:
        """Release the HTTP connections of the adapters that hold any."""
        for adapter in self._adapters.values():
            if isinstance(adapter, KubeClusterAdapter):
                adapter.close()


def build_adapter(
    name: str,
    *,
    kubeconfig: str | None,
    context: str | None,
    in_cluster: bool,
    grant_namespace: str,
    audience: str | None,
    jwt_issuer: ClusterTokenIssuer | None = None,
) -> KubeClusterAdapter:
    """The adapter for one config entry: exactly one of ``kubeconfig`` or ``in_cluster``; with a
    ``jwt_issuer`` the cluster is in jwt mode (group bindings, kubejit's own tokens)."""
    if in_cluster and kubeconfig:
        raise ConfigError(
            f"cluster '{name}' sets both a kubeconfig and in_cluster",
            hint="Choose one: in_cluster when the broker runs inside that cluster, a kubeconfig otherwise.",
        )
    if in_cluster:
        if context:
            raise ConfigError(f"cluster '{name}' sets a context, which only applies to a kubeconfig")
        client = client_in_cluster(name)
    elif not kubeconfig:
        raise ConfigError(
            f"cluster '{name}' has neither a kubeconfig nor in_cluster",
            hint="Point `kubeconfig` at a file holding the broker's (least-privilege) credentials.",
        )
    else:
        client = client_from_kubeconfig(name, kubeconfig=kubeconfig, context=context)
    if jwt_issuer is None:
        return KubeClusterAdapter(name, client=client, grant_namespace=grant_namespace, audience=audience)
    if not audience:
        raise ConfigError(f"cluster '{name}' is in jwt mode but has no audience")
    return JwtClusterAdapter(
        name, client=client, grant_namespace=grant_namespace, audience=audience, issuer=jwt_issuer
    )
