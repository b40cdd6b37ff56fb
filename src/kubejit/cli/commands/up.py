"""kubejit up: the quick start. Two local clusters, the broker, the example policy, in one command.

Starts (or reuses) dev clusters `dev` and `prod`, installs the broker's least-privilege RBAC in each,
writes a config and the example policy, and runs the broker in the foreground. Ctrl-C stops it all.
`dev` runs in jwt mode (its API server trusts the broker as a JWT issuer, so `kubectl auth whoami`
names the person), `prod` in ServiceAccount mode; the broker serves HTTPS with a local CA for that.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click
import yaml
from rich.console import Console

from kubejit.cli.commands.serve import run_broker
from kubejit.cli.declare import command
from kubejit.cli.options import path_type

TYPE_CHECKING = False
if TYPE_CHECKING:  # clusters and the control plane load when the command runs
    from kubejit.config import CredentialMode
    from kubejit.testing.certs import ServingTls
    from kubejit.testing.controlplane import ControlPlane

#: The clusters of the quick start and the namespaces the example policy talks about.
CLUSTERS = {"dev": ("team-a", "team-b", "dev"), "prod": ("payments", "orders")}
#: Each cluster's credential mode: both side by side (docs/jwt-mode.md).
MODES: dict[str, CredentialMode] = {"dev": "jwt", "prod": "serviceAccount"}
#: The username prefix and token lifetime of the quick start's jwt-mode cluster.
JWT_PREFIX = "kubejit:"
JWT_LIFETIME_MINUTES = 5
USERS = {"alice": ["developers"], "bob": ["sre"], "carol": ["sre"], "root": ["platform-admins"]}


def _start_cluster(
    console: Console, workdir: Path, name: str, authentication: str | None
) -> tuple[ControlPlane, bool]:
    from kubejit.testing.certs import write_private_file
    from kubejit.testing.controlplane import ControlPlane

    running = ControlPlane.attach(workdir)
    if running is not None and running.is_running():
        wanted_file = running.authentication_config_path.exists()
        if authentication is None and not wanted_file:
            return running, False
        if authentication is not None and wanted_file:
            # kube-apiserver re-reads this file on change: a new broker port needs no restart.
            write_private_file(running.authentication_config_path, authentication.encode())
            return running, False
    if running is not None:
        running.stop()  # leftovers of a crashed run, or started in the other mode
    plane = ControlPlane(workdir, name=name, detached=True, authentication_config=authentication)
    with console.status(f"Starting local cluster '{name}' (etcd + kube-apiserver)..."):
        plane.start()
    return plane, True


def _audience(name: str) -> str:
    return f"kubejit:{name}"


def _broker_tls(home: Path) -> ServingTls:
    """The broker's HTTPS certificate and its CA (made once, kept in the quick start's folder)."""
    from kubejit.testing.certs import ServingTls, write_serving_tls

    directory = home / "tls"
    kept = ServingTls(ca_cert=directory / "ca.crt", cert=directory / "tls.crt", key=directory / "tls.key")
    if all(path.exists() for path in (kept.ca_cert, kept.cert, kept.key)):
        return kept
    return write_serving_tls(directory, name="kubejit-quickstart-broker")


def _authentication_config(name: str, port: int, tls: ServingTls) -> str | None:
    """What `kubejit cluster-setup --mode jwt` would print for this cluster (None: SA mode)."""
    if MODES[name] != "jwt":
        return None
    from kubejit.clusters.jwt_setup import authentication_configuration, jwt_authenticator, to_yaml

    entry = jwt_authenticator(
        issuer_url=f"https://127.0.0.1:{port}/k8s",
        audience=_audience(name),
        ca_pem=tls.ca_cert.read_text(),
        username_prefix=JWT_PREFIX,
        max_lifetime_seconds=JWT_LIFETIME_MINUTES * 60,
    )
    return to_yaml(authentication_configuration([entry]))


def _write_config(home: Path, planes: dict[str, ControlPlane], port: int, tls: ServingTls) -> Path:
    policy = home / "policy.yaml"
    if not policy.exists():
        policy.write_text((resources.files("kubejit") / "examples" / "policy.yaml").read_text())
    clusters = []
    for n, p in planes.items():
        entry = {"name": n, "kubeconfig": str(home / f"{n}-broker.kubeconfig"), "audience": p.audience}
        if MODES[n] == "jwt":
            entry.update(audience=_audience(n), credentialMode="jwt")
        clusters.append(entry)
    config = {
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "tls": {"certFile": str(tls.cert), "keyFile": str(tls.key)},
        },
        "store": {"url": f"sqlite:///{home / 'kubejit.db'}"},
        "dataDir": str(home),
        "clusters": clusters,
        "policyFile": str(policy),
        "devIssuer": {"enabled": True, "users": USERS},
        "jwtIssuer": {
            "tokenLifetimeMinutes": JWT_LIFETIME_MINUTES,
            "usernamePrefix": JWT_PREFIX,
            "certificateAuthorityFile": str(tls.ca_cert),
        },
    }
    path = home / "config.yaml"
    path.write_text(
        "# Written by `kubejit up`; see docs/configuration.md.\n" + yaml.safe_dump(config, sort_keys=False)
    )
    return path


@command()
@click.option(
    "--dir", "directory", type=path_type(), help="Where the clusters, config, policy and database live."
)
@click.option("--port", type=int, default=8080, show_default=True, help="Broker port on 127.0.0.1.")
@click.option(
    "--keep-clusters/--no-keep-clusters",
    default=False,
    show_default=True,
    help="Leave the clusters running when the broker stops.",
)
def up(directory: Path | None = None, port: int = 8080, keep_clusters: bool = False) -> None:
    """Quick start: local clusters `dev` and `prod`, the example policy, and the broker (Ctrl-C stops all)."""
    from kubejit.clusters.bootstrap import install_broker
    from kubejit.config import data_dir, load_settings
    from kubejit.testing.clients import admin_client

    console = Console(highlight=False, soft_wrap=True)
    home = (directory or data_dir() / "quickstart").expanduser().absolute()
    home.mkdir(parents=True, exist_ok=True)
    planes: dict[str, ControlPlane] = {}
    started: list[ControlPlane] = []
    tls = _broker_tls(home)
    try:
        for name, namespaces in CLUSTERS.items():
            authentication = _authentication_config(name, port, tls)
            plane, fresh = _start_cluster(console, home / "clusters" / name, name, authentication)
            planes[name] = plane
            if fresh:
                started.append(plane)
            with console.status(f"Installing the broker's RBAC in '{name}'..."), admin_client(plane) as admin:
                install_broker(
                    admin,
                    cluster=name,
                    out=home / f"{name}-broker.kubeconfig",
                    namespaces=namespaces,
                    mode=MODES[name],
                )
        config = _write_config(home, planes, port, tls)
        _print_next_steps(console, planes, config, port, tls)
        run_broker(load_settings(config))
    finally:
        if not keep_clusters:
            for plane in started:
                plane.stop()


def _print_next_steps(
    console: Console, planes: dict[str, ControlPlane], config: Path, port: int, tls: ServingTls
) -> None:
    broker = f"https://127.0.0.1:{port}"
    console.print(f"\n[bold green]kubejit is up.[/] Config: {config}")
    for name, plane in planes.items():
        mode = "jwt mode: tokens name the person" if MODES[name] == "jwt" else "ServiceAccount mode"
        console.print(
            f"  cluster {name}: {plane.server}  ({mode}; admin kubeconfig: {plane.kubeconfig_path})"
        )
    console.print(
        "\nIn another terminal ([bold]. .venv/bin/activate[/] first):\n"
        f"  export KUBEJIT_BROKER={broker}\n"
        f"  export SSL_CERT_FILE={tls.ca_cert}   # the broker's local CA (it serves HTTPS)\n"
        "  kubejit login --dev-user alice                      # alice is in group developers\n"
        "  kubejit whoami                                      # what policy lets alice request\n"
        '  kubejit request -c dev -n team-a -r edit --for 30m --reason "try kubejit" --use\n'
        "  kubectl auth whoami                                 # kubejit:alice, group kubejit:grant:<id>\n"
        "  kubectl get configmaps                              # works in team-a only, until the grant ends\n"
        '  kubejit request -c prod -n payments -r edit --reason "fix refunds" --ticket OPS-1\n'
        "  kubejit login --dev-user bob && kubejit requests    # bob (sre) approves:\n"
        "  kubejit approve <id>\n"
        "  kubejit revoke <id>                                 # access ends at once\n"
        f"Or in a browser: {broker}/ui/ (pick a user on the development issuer's page).\n"
        "Users: alice (developers), bob and carol (sre), root (platform-admins). Ctrl-C stops everything.\n"
    )
