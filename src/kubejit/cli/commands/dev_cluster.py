"""`kubejit dev-cluster`: a real, local Kubernetes API (etcd + kube-apiserver) to try kubejit against.

Thin commands over ``kubejit.testing.controlplane``: the same code the integration tests run, started
detached so the cluster outlives the command; `stop`, `status` and `kubeconfig` find it again through
the ``state.json`` in its directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from kubejit.cli.declare import command, group
from kubejit.cli.options import path_type
from kubejit.errors import DevClusterError
from kubejit.testing.state import default_cluster_dir, validate_cluster_name

if TYPE_CHECKING:  # loaded when a command runs: it pulls in cryptography for the certificates
    from kubejit.testing.controlplane import ControlPlane

app = group(
    "dev-cluster",
    help=(
        "Run a local Kubernetes control plane (etcd + kube-apiserver on 127.0.0.1) to try kubejit.\n\n"
        "It has RBAC, ServiceAccount tokens and an audit log, but no nodes: pods are never\n"
        "scheduled. Typical use:\n\n"
        "  kubejit dev-cluster start\n"
        '  kubectl --kubeconfig "$(kubejit dev-cluster kubeconfig)" get ns\n'
        "  kubejit dev-cluster stop\n\n"
        "Needs kube-apiserver and etcd: run `scripts/k8s-binaries` once to build them."
    ),
)

name_option = click.option(
    "--name",
    "-n",
    default="dev",
    show_default=True,
    help="Cluster name: names the kubeconfig context, the default directory and the token issuer "
    "https://<name>.kubejit.local.",
)
dir_option = click.option(
    "--dir",
    "directory",
    type=path_type(file_okay=False),
    show_default="~/.local/share/kubejit/dev-cluster/<name>",
    help="Directory for the cluster's certificates, etcd data, logs and kubeconfig; new or empty. "
    "Pass the same --dir to stop, status and kubeconfig. $XDG_DATA_HOME replaces ~/.local/share.",
)

_NOT_RUNNING_EXIT = 3  # like `systemctl status`: the command worked, the service is not running


def _console() -> Console:
    # soft_wrap: paths are printed whole, never folded at the terminal width, so they can be copied;
    # no markup: a path may contain '['.
    return Console(highlight=False, soft_wrap=True, markup=False)


def _cluster_dir(name: str, directory: Path | None) -> Path:
    validate_cluster_name(name)
    return (directory if directory is not None else default_cluster_dir(name)).expanduser().absolute()


def _running(name: str, directory: Path | None) -> ControlPlane | None:
    from kubejit.testing.controlplane import ControlPlane

    plane = ControlPlane.attach(_cluster_dir(name, directory))
    return plane if plane is not None and plane.is_running() else None


@command(group=app)
@name_option
@dir_option
@click.option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    show_default="a free port",
    help="Port for the API server on 127.0.0.1.",
)
@click.option(
    "--authentication-config",
    type=path_type(dir_okay=False, exists=True),
    help="An AuthenticationConfiguration file for kube-apiserver, e.g. from "
    "`kubejit cluster-setup --mode jwt` (kubejit as a JWT issuer).",
)
def start(
    name: str = "dev",
    directory: Path | None = None,
    port: int | None = None,
    authentication_config: Path | None = None,
) -> None:
    """Start the cluster and wait until its API server is ready (a few seconds).

    Prints the path of an admin kubeconfig (client certificate in group system:masters).

    Starting a cluster that already runs only says where it is.
    """
    console = _console()
    workdir = _cluster_dir(name, directory)
    running = _running(name, directory)
    if running is not None:
        console.print(f"Dev cluster '{name}' is already running at {running.server}.")
        _print_usage(console, running)
        return
    from kubejit.testing.controlplane import ControlPlane

    authentication = authentication_config.read_text() if authentication_config else None
    plane = ControlPlane(workdir, name=name, port=port, detached=True, authentication_config=authentication)
    with console.status(f"Starting dev cluster '{name}' (etcd + kube-apiserver)..."):
        plane.start()
    console.print(
        f"Dev cluster '{name}' is ready at {plane.server} (started in {plane.startup_seconds or 0:.1f}s).",
        style="green",
    )
    _print_usage(console, plane)


def _print_usage(console: Console, plane: ControlPlane) -> None:
    console.print(f"Kubeconfig: {plane.kubeconfig_path}")
    console.print(f"Try:        kubectl --kubeconfig {plane.kubeconfig_path} get ns")
    console.print(f"Stop with:  kubejit dev-cluster stop{_flags(plane)}")


def _flags(plane: ControlPlane) -> str:
    flags = "" if plane.name == "dev" else f" --name {plane.name}"
    if plane.workdir != default_cluster_dir(plane.name):
        flags += f" --dir {plane.workdir}"
    return flags


@command(group=app)
@name_option
@dir_option
def stop(name: str = "dev", directory: Path | None = None) -> None:
    """Stop the cluster's processes and delete its directory (certificates, data, logs, kubeconfig).

    Safe to repeat; also cleans up after a cluster whose processes died.
    """
    console = _console()
    from kubejit.testing.controlplane import ControlPlane

    plane = ControlPlane.attach(_cluster_dir(name, directory))
    if plane is None:
        console.print(f"Dev cluster '{name}' is not running.")
        return
    was_running = plane.is_running()
    plane.stop()
    if was_running:
        console.print(f"Dev cluster '{name}' stopped.")
    else:
        console.print(f"Dev cluster '{name}' was not running; removed its leftover files.")


@command(group=app)
@name_option
@dir_option
def status(name: str = "dev", directory: Path | None = None) -> None:
    """Say whether the cluster runs, and where. Exit code 0 if it runs, 3 if not."""
    console = _console()
    from kubejit.testing.controlplane import ControlPlane

    plane = ControlPlane.attach(_cluster_dir(name, directory))
    if plane is None:
        console.print(f"Dev cluster '{name}' is not running.")
        raise click.exceptions.Exit(_NOT_RUNNING_EXIT)
    if not plane.is_running():
        console.print(
            f"Dev cluster '{name}' is not running (its processes died); "
            f"`kubejit dev-cluster stop{_flags(plane)}` cleans up."
        )
        raise click.exceptions.Exit(_NOT_RUNNING_EXIT)
    state = plane.state
    console.print(f"Dev cluster '{name}' is running.")
    console.print(f"Server:     {state.server}")
    console.print(f"Kubeconfig: {state.kubeconfig_path}")
    console.print(f"Issuer:     {state.issuer} (token audience)")
    console.print(f"Audit log:  {state.audit_log_path}")
    console.print(f"Directory:  {state.workdir}")
    console.print(f"Processes:  etcd pid {state.etcd_pid}, kube-apiserver pid {state.apiserver_pid}")


@command(group=app)
@name_option
@dir_option
def kubeconfig(name: str = "dev", directory: Path | None = None) -> None:
    """Print the path of the running cluster's admin kubeconfig (for `kubectl --kubeconfig`)."""
    plane = _running(name, directory)
    if plane is None:
        raise DevClusterError(
            f"dev cluster '{name}' is not running",
            hint=f"Start it with `kubejit dev-cluster start{'' if name == 'dev' else f' --name {name}'}`.",
        )
    click.echo(str(plane.kubeconfig_path))
