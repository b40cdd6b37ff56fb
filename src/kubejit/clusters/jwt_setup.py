"""What a cluster's API server needs to trust kubejit's tokens (jwt mode), built as data.

``kubejit cluster-setup --mode jwt`` prints it: one ``jwt`` authenticator of an
AuthenticationConfiguration (``--authentication-config``, apiserver.config.k8s.io/v1). The API
server itself then refuses what kubejit would never mint: another audience, another issuer, a bad
signature, a token living longer than kubejit's cap, or one without kubejit's claims and exactly
one grant group.
"""

from __future__ import annotations

from typing import Any

import yaml

from kubejit.identity.cluster_tokens import GRANT_GROUP_PREFIX

API_VERSION = "apiserver.config.k8s.io/v1"
#: Allowed past the configured lifetime in the ``exp - iat`` cap (a token never needs it: slack).
LIFETIME_SLACK_SECONDS = 0


def jwt_authenticator(
    *, issuer_url: str, audience: str, ca_pem: str | None, username_prefix: str, max_lifetime_seconds: int
) -> dict[str, Any]:
    """One ``jwt`` entry: kubejit's issuer for this cluster's audience only."""
    issuer: dict[str, Any] = {"url": issuer_url, "audiences": [audience]}
    if ca_pem:
        issuer["certificateAuthority"] = ca_pem
    cap = max_lifetime_seconds + LIFETIME_SLACK_SECONDS
    prefix = GRANT_GROUP_PREFIX
    return {
        "issuer": issuer,
        "claimValidationRules": [
            {
                "expression": "has(claims.jti) && type(claims.jti) == string && claims.jti != ''",
                "message": "kubejit tokens carry a jti",
            },
            {
                "expression": f"has(claims.iat) && double(claims.exp) - double(claims.iat) <= {cap}.0",
                "message": f"kubejit tokens live at most {cap} seconds (exp - iat)",
            },
            {
                "expression": (
                    # claims.* are of type any: dyn() lets CEL range over the list.
                    "has(claims.groups) && type(claims.groups) == list && size(dyn(claims.groups)) == 1 && "
                    f"dyn(claims.groups).all(g, type(g) == string && g.startsWith('{prefix}'))"
                ),
                "message": f"kubejit tokens carry exactly one group, {prefix}<grant>",
            },
            {
                "expression": "has(claims.sub) && type(claims.sub) == string && claims.sub != ''",
                "message": "kubejit tokens name the person in sub",
            },
        ],
        "claimMappings": {
            "username": {"claim": "sub", "prefix": username_prefix},
            "groups": {"claim": "groups", "prefix": ""},
        },
    }


def authentication_configuration(authenticators: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole AuthenticationConfiguration file (merge the ``jwt`` entries into an existing one)."""
    return {"apiVersion": API_VERSION, "kind": "AuthenticationConfiguration", "jwt": authenticators}


class _Literal(yaml.SafeDumper):
    """PEM blocks stay readable (``|`` block scalars), as an administrator would write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Literal.add_representer(str, _str)


def to_yaml(document: dict[str, Any]) -> str:
    """The configuration as the YAML file kube-apiserver reads."""
    return yaml.dump(document, Dumper=_Literal, sort_keys=False)
