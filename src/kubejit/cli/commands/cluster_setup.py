"""kubejit cluster-setup: what one cluster needs for kubejit, printed for its administrator.

``--mode serviceAccount`` (the default) prints the broker's RBAC (deploy/rbac.yaml for the
configured namespaces). ``--mode jwt`` prints the AuthenticationConfiguration entry that makes the
cluster's API server trust kubejit's tokens, then the smaller RBAC of that mode (RoleBindings and
``bind`` only). Nothing is applied: the output is for review and for the cluster's own tooling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from kubejit.cli.declare import command
from kubejit.cli.options import path_type

TYPE_CHECKING = False
if TYPE_CHECKING:  # pydantic loads when the command runs
    from kubejit.config import Settings


config_option = click.option(
    "--config",
    "-f",
    required=True,
    type=path_type(),
    envvar="KUBEJIT_CONFIG",
    show_envvar=True,
    help="The broker's YAML config file.",
)


@command("cluster-setup")
@click.option("--cluster", "-c", required=True, help="The cluster's name in the broker config.")
@config_option
@click.option(
    "--mode",
    type=click.Choice(["serviceAccount", "jwt"]),
    help="serviceAccount or jwt; default: the cluster's credentialMode in the config.",
)
def cluster_setup(cluster: str, config: Path, mode: Literal["serviceAccount", "jwt"] | None = None) -> None:
    """Print what a cluster needs: the broker's RBAC and, in jwt mode, the authentication config."""
    import yaml

    from kubejit.clusters.bootstrap import rbac_documents
    from kubejit.config import load_settings
    from kubejit.errors import InvalidInput

    settings = load_settings(config)
    found = [c for c in settings.clusters if c.name == cluster]
    if not found:
        known = ", ".join(c.name for c in settings.clusters)
        raise InvalidInput(
            f"no cluster '{cluster}' in {config} (known: {known})", hint="Pass one of them with -c."
        )
    chosen = mode or found[0].credential_mode
    documents = rbac_documents(
        broker_namespace=settings.broker_namespace, grant_namespace=settings.grant_namespace, mode=chosen
    )
    if chosen == "jwt":
        click.echo(_authentication_snippet(settings, found[0].audience))
    click.echo(f"# The broker's RBAC in cluster {cluster} ({chosen} mode): kubectl apply -f -")
    click.echo(yaml.safe_dump_all(documents, sort_keys=False), nl=False)


def _authentication_snippet(settings: Settings, audience: str) -> str:

    from kubejit.clusters.jwt_setup import authentication_configuration, jwt_authenticator, to_yaml
    from kubejit.errors import ConfigError

    ca_file = settings.jwt_issuer.certificate_authority_file
    ca_pem = None
    if ca_file is not None:
        try:
            ca_pem = ca_file.read_text()
        except OSError as exc:
            raise ConfigError(
                f"jwtIssuer.certificateAuthorityFile {ca_file}: {exc.strerror or exc}",
                hint="Point it at the PEM CA that signed the broker's certificate (broker.tls.certFile).",
            ) from exc
    entry = jwt_authenticator(
        issuer_url=settings.jwt_issuer_url,
        audience=audience,
        ca_pem=ca_pem,
        username_prefix=settings.jwt_issuer.username_prefix,
        max_lifetime_seconds=settings.jwt_issuer.token_lifetime_minutes * 60,
    )
    document = to_yaml(authentication_configuration([entry]))
    return (
        "# kube-apiserver --authentication-config=<this file> (or merge its jwt entry into yours).\n"
        "# Needs Kubernetes 1.30+ (structured authentication configuration; GA in 1.34).\n"
        + document
        + "---\n"
    )


@command("rotate-jwt-key")
@config_option
def rotate_jwt_key(config: Path) -> None:
    """Sign jwt-mode cluster tokens with a new key from now on (the old one stays published until
    its last token has expired). Every replica reading jwtIssuer.keyDir picks it up at once."""
    from kubejit.clock import SystemClock
    from kubejit.config import load_settings
    from kubejit.identity.cluster_keys import ClusterKeyRing

    settings = load_settings(config)
    lifetime = settings.jwt_issuer.token_lifetime_minutes * 60
    ring = ClusterKeyRing(
        settings.jwt_key_dir,
        clock=SystemClock(),
        overlap_seconds=lifetime,
        rotate_after_seconds=settings.jwt_issuer.rotate_after_hours * 3600,
    )
    old = ring.signing_key().kid
    new = ring.rotate().kid
    gone = ring.prune()
    click.echo(
        f"signing key {new} replaces {old} in {settings.jwt_key_dir}; {old} stays published for "
        f"{lifetime + 60} s" + (f"; removed expired keys {', '.join(gone)}" if gone else "")
    )
