"""Clusters: the Kubernetes side of a grant. The only package that imports lightkube.

``objects`` builds a grant's ServiceAccount, bindings and TokenRequest as data; ``adapter`` sends
them with the broker's least-privilege identity (deploy/rbac.yaml); ``errors`` turns API failures
into the kubejit error tree; ``registry`` maps cluster names to adapters.
"""

from kubejit.clusters.adapter import ClusterEndpoint, KubeClusterAdapter
from kubejit.clusters.registry import ClusterRegistry, build_adapter

__all__ = ["ClusterEndpoint", "ClusterRegistry", "KubeClusterAdapter", "build_adapter"]
