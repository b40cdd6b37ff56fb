"""kubejit up: the quick start. Two local clusters, the broker, the example policy, in one command.

Starts (or reuses) dev clusters `dev` and `prod`, installs the broker's least-privilege RBAC in each,
writes a config and the example policy, and runs the broker in the foreground. Ctrl-C stops it all.
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
    from kubejit.testing.controlplane import ControlPlane

#: The clusters of the quick start and the namespaces the example policy talks about.
CLUSTERS = {"dev": ("team-a", "team-b", "dev"), "prod": ("payments", "orders")}
USERS = {"alice": ["developers"], "bob": ["sre"], "carol": ["sre"], "root": ["platform-admins"]}


def _start_cluster(console: Console, workdir: Path, name: str) -> tuple[ControlPlane, bool]:
    from kubejit.testing.controlplane import ControlPlane

    running = ControlPlane.attach(workdir)
    if running is not None and running.is_running():
        return running, False
    if running is not None:
        running.stop()  # leftovers of a crashed run
    plane = ControlPlane(workdir, name=name, detached=True)
    with console.status(f"Starting local cluster '{name}' (etcd + kube-apiserver)..."):
        plane.start()
    return plane, True


def _write_config(home: Path, planes: dict[str, ControlPlane], port: int) -> Path:
    policy = home / "policy.yaml"
    if not policy.exists():
        policy.write_text((resources.files("kubejit") / "examples" / "policy.yaml").read_text())
    config = {
        "broker": {"host": "127.0.0.1", "port": port},
        "store": {"url": f"sqlite:///{home / 'kubejit.db'}"},
        "dataDir": str(home),
        "clusters": [
            {"name": n, "kubeconfig": str(home / f"{n}-broker.kubeconfig"), "audience": p.audience}
            for n, p in planes.items()
        ],
        "policyFile": str(policy),
        "devIssuer": {"enabled": True, "users": USERS},
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
    try:
        for name, namespaces in CLUSTERS.items():
            plane, fresh = _start_cluster(console, home / "clusters" / name, name)
            planes[name] = plane
            if fresh:
                started.append(plane)
            with console.status(f"Installing the broker's RBAC in '{name}'..."), admin_client(plane) as admin:
                install_broker(
                    admin, cluster=name, out=home / f"{name}-broker.kubeconfig", namespaces=namespaces
                )
        config = _write_config(home, planes, port)
        _print_next_steps(console, planes, config, port)
        run_broker(load_settings(config))
    finally:
        if not keep_clusters:
            for plane in started:
                plane.stop()


def _print_next_steps(console: Console, planes: dict[str, ControlPlane], config: Path, port: int) -> None:
    broker = f"http://127.0.0.1:{port}"
    console.print(f"\n[bold green]kubejit is up.[/] Config: {config}")
    for name, plane in planes.items():
        console.print(f"  cluster {name}: {plane.server}  (admin kubeconfig: {plane.kubeconfig_path})")
    console.print(
        "\nIn another terminal ([bold]. .venv/bin/activate[/] first):\n"
        f"  export KUBEJIT_BROKER={broker}\n"
        "  kubejit login --dev-user alice                      # alice is in group developers\n"
        "  kubejit whoami                                      # what policy lets alice request\n"
        '  kubejit request -c dev -n team-a -r edit --for 30m --reason "try kubejit" --use\n'
        "  kubectl get serviceaccounts                         # works in team-a only, until the grant ends\n"
        '  kubejit request -c prod -n payments -r edit --reason "fix refunds" --ticket OPS-1\n'
        "  kubejit login --dev-user bob && kubejit requests    # bob (sre) approves:\n"
        "  kubejit approve <id>\n"
        "  kubejit revoke <id>                                 # access ends at once\n"
        "Users: alice (developers), bob and carol (sre), root (platform-admins). Ctrl-C stops everything.\n"
    )
