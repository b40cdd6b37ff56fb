"""Typed identifiers, so a grant id is never passed where a cluster name is expected."""

from typing import NewType

GrantId = NewType("GrantId", str)
ClusterName = NewType("ClusterName", str)
NamespaceName = NewType("NamespaceName", str)
PrincipalName = NewType("PrincipalName", str)
