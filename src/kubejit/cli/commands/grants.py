"""request / requests / approve / deny / grants / revoke / extend: thin calls to the broker."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.declare import command
from kubejit.cli.options import broker_option, output_option
from kubejit.durations import parse_duration
from kubejit.errors import InvalidInput, KubejitError
from kubejit.local import session

if TYPE_CHECKING:  # `request --use` only: kubeconfig files (and YAML) load when a context is written
    from kubejit.cli.commands.kubeconfig import KubeconfigResult

Output = render.Output


def _client(broker: str | None) -> BrokerClient:
    url, current = session.for_broker(broker)  # the login's token goes to its own broker only
    return BrokerClient(url, token=current.token)


@command()
@click.option("--cluster", "-c", required=True, help="Cluster name, as registered in the broker.")
@click.option("--role", "-r", required=True, help="Role from the policy's allow-list, e.g. view, edit.")
@click.option(
    "--namespace",
    "-n",
    multiple=True,
    help="Namespace to access; repeat for several. None for a cluster-wide role.",
)
@click.option("--reason", default="", show_default=False, help="Why you need it; recorded in the audit log.")
@click.option("--for", "duration", help="How long, e.g. 30m or 2h (default: the rule's default).")
@click.option("--ticket", help="Ticket id, where policy asks for one.")
@click.option(
    "--break-glass", is_flag=True, help="Emergency access: auto-approved, flagged, reviewed afterwards."
)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait until approved or denied, showing who was notified (exit 3 if denied, "
    "124 if still undecided at --wait-timeout, 130 on Ctrl-C; the request stays).",
)
@click.option(
    "--wait-timeout",
    type=click.IntRange(min=1),
    default=3600,
    show_default=True,
    help="Stop waiting after this many seconds.",
)
@click.option(
    "--use", is_flag=True, help="Once active: write its kubectl context and switch to it (see `kubeconfig`)."
)
@broker_option
@output_option
def request(
    cluster: str,
    role: str,
    namespace: Sequence[str] = (),
    reason: str = "",
    duration: str | None = None,
    ticket: str | None = None,
    break_glass: bool = False,
    wait: bool = False,
    wait_timeout: int = 3600,
    use: bool = False,
    broker: str | None = None,
    output: Output = Output.table,
) -> None:
    """Request just-in-time access to namespaces of one cluster (or, for a cluster-wide role, all of it).

    Example: kubejit request -c dev -n team-a -r edit --for 1h --reason "debug checkout latency"
    Cluster-wide (a policy role with clusterScope: true): kubejit request -c dev -r node-reader
    """
    from kubejit.cli import waiting  # --wait's progress, loaded by `request` only

    if duration is not None:
        parse_duration(duration)  # fail here, before any network call, with the same message
    body: dict[str, Any] = {
        "cluster": cluster,
        "namespaces": list(namespace),
        "role": role,
        "duration": duration.strip() if duration else None,  # the API takes no padding
        "reason": reason,
        "ticket": ticket,
        "break_glass": break_glass,
    }
    with _client(broker) as client:
        grant = client.call("POST", "/v1/grants", json=body)
        if wait and grant["state"] in waiting.UNDECIDED:
            grant = _wait(client, grant, timeout=wait_timeout)
        try:
            written, failed = (_use(client, grant) if use else None), None
        except KubejitError as exc:  # the grant exists: show it first, then why no context was written
            written, failed = None, exc
    render.grant(grant, output, headline=_headline(grant))
    if output is Output.table and grant["state"] == "pending" and not wait:
        render.say(f"Waiting for approval. Approvers run: kubejit approve {render.printable(grant['id'])}")
    if failed is not None:
        raise failed
    if use and output is Output.table:
        _show_use(grant, written)
    if grant["state"] in ("denied", "expired", "failed"):
        raise click.exceptions.Exit(3)
    if wait and grant["state"] in waiting.UNDECIDED:
        raise click.exceptions.Exit(124)  # --wait-timeout passed: said so by the wait's last line


def _wait(client: BrokerClient, grant: dict[str, Any], *, timeout: int) -> dict[str, Any]:
    """request --wait; Ctrl-C stops waiting (exit 130) and leaves the request as it is."""
    from kubejit.cli import waiting

    try:
        return waiting.wait_for_decision(client, grant, timeout=timeout, progress=waiting.progress_for())
    except KeyboardInterrupt:
        print(waiting.still_pending_text(grant), file=sys.stderr, flush=True)
        raise click.exceptions.Exit(130) from None


def _use(client: BrokerClient, grant: dict[str, Any]) -> KubeconfigResult | None:
    """request --use: the kubeconfig context of the new grant, current, when the grant is active."""
    from kubejit.cli.commands.kubeconfig import write_contexts

    if grant["state"] != "active":
        return None
    return write_contexts(client, client.base_url, grant_id=grant["id"], path=None, use=True, prune=False)


def _show_use(grant: dict[str, Any], written: KubeconfigResult | None) -> None:
    if written is None:
        if grant["state"] in ("pending", "approved"):
            render.say(
                f"Once it is active, run: kubejit kubeconfig --grant {render.printable(grant['id'])} --use"
            )
        return
    from kubejit.cli.commands.kubeconfig import show as show_kubeconfig

    show_kubeconfig(written)


def _headline(grant: dict[str, Any]) -> str:
    return {
        "active": "Access granted.",
        "pending": "Request submitted; it needs approval.",
        "denied": "Request denied.",
        "expired": "Request expired without a decision.",
    }.get(grant["state"], f"Grant is {render.printable(grant['state'])}.")


def _side_by_side(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Both calls at once (each is a connection of its own): the second one's wait is not added to
    the command's. The first error, in call order, is raised."""
    import threading

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(second())
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    other = threading.Thread(target=run, daemon=True)
    other.start()
    try:
        answer = first()
    finally:
        other.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return answer, outcome[0]


@command()
@broker_option
@output_option
def requests(broker: str | None = None, output: Output = Output.table) -> None:
    """Your pending requests, and the requests waiting for your approval."""
    with _client(broker) as client:
        mine, waiting = _side_by_side(
            lambda: client.call("GET", "/v1/grants", params={"scope": "mine", "state": ["pending"]}),
            lambda: client.call("GET", "/v1/grants", params={"scope": "pending-for-me"}),
        )
    if output is Output.json:
        render.as_json("Requests", {"mine": mine, "waiting_for_me": waiting})
        return
    render.grants(mine, output, title="Your pending requests")
    render.grants(waiting, output, title="Waiting for your approval")


@command()
@click.argument("grant_id")
@click.option("--comment", default="", show_default=False, help="Recorded with your approval.")
@broker_option
@output_option
def approve(
    grant_id: str, comment: str = "", broker: str | None = None, output: Output = Output.table
) -> None:
    """Approve a pending request (you cannot approve your own).

    GRANT_ID: the grant id (see `kubejit requests`)."""
    with _client(broker) as client:
        grant = client.call("POST", f"/v1/grants/{grant_id}/approve", json={"comment": comment})
    render.grant(grant, output, headline="Approved." if grant["state"] != "pending" else "Approval recorded.")


@command()
@click.argument("grant_id")
@click.option("--reason", required=True, help="Why; the requester sees it.")
@broker_option
@output_option
def deny(grant_id: str, reason: str, broker: str | None = None, output: Output = Output.table) -> None:
    """Deny a pending request, or end an approved or active grant as its approver."""
    with _client(broker) as client:
        grant = client.call("POST", f"/v1/grants/{grant_id}/deny", json={"reason": reason})
    render.grant(grant, output, headline="Denied.")


@command()
@click.option("--all", "all_users", is_flag=True, help="Everyone's grants (admins only).")
@click.option("--state", multiple=True, help="Filter by state; repeatable.")
@broker_option
@output_option
def grants(
    all_users: bool = False,
    state: Sequence[str] = (),
    broker: str | None = None,
    output: Output = Output.table,
) -> None:
    """List grants: yours by default."""
    params: dict[str, Any] = {"scope": "all" if all_users else "mine"}
    if state:
        params["state"] = list(state)
    with _client(broker) as client:
        items = client.call("GET", "/v1/grants", params=params)
    render.grants(items, output)


@command()
@click.argument("grant_id", required=False)
@click.option("--user", help="Offboarding: end every grant this user holds (admins).")
@click.option("--reason", default="", show_default=False, help="Recorded in the audit log.")
@click.option("--no-lock", is_flag=True, help="With --user: end the grants but do not lock the user out.")
@broker_option
@output_option
def revoke(
    grant_id: str | None = None,
    user: str | None = None,
    reason: str = "",
    no_lock: bool = False,
    broker: str | None = None,
    output: Output = Output.table,
) -> None:
    """End a grant at once: its ServiceAccount and bindings are deleted, its tokens stop working.

    With --user (offboarding) every open grant of that user ends and the user is locked out
    (`kubejit locks`, `kubejit unlock`), so their still-valid IdP token buys nothing new.

    GRANT_ID: the grant to end now.
    """
    if (grant_id is None) == (user is None):
        raise InvalidInput("give either a grant id or --user", hint="e.g. `kubejit revoke g1a2b3c4d5e6`.")
    if no_lock and user is None:
        raise InvalidInput("--no-lock goes with --user", hint="e.g. `kubejit revoke --user alice --no-lock`.")
    with _client(broker) as client:
        if user:
            body = {"user": user, "reason": reason, "lock": not no_lock}
            done = client.call("POST", "/v1/revocations", json=body)
            if output is Output.json:
                render.as_json("Offboarding", done)
                return
            from kubejit.cli.commands.locks import show_ended

            render.say(render.printable(done["message"]))
            show_ended(done)
            return
        grant = client.call("POST", f"/v1/grants/{grant_id}/revoke", json={"reason": reason})
    render.grant(grant, output, headline="Revoked.")


@command()
@click.argument("grant_id")
@click.option("--for", "duration", required=True, help="How much longer, e.g. 15m.")
@broker_option
@output_option
def extend(grant_id: str, duration: str, broker: str | None = None, output: Output = Output.table) -> None:
    """Extend an active grant, where its policy rule allows it, up to the rule's maximum.

    GRANT_ID: the active grant to extend."""
    parse_duration(duration)
    with _client(broker) as client:
        grant = client.call("POST", f"/v1/grants/{grant_id}/extend", json={"duration": duration.strip()})
    render.grant(grant, output, headline="Extended.")
