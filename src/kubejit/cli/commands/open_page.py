"""open: a request's page in the browser, the same link every notification about it carries."""

from __future__ import annotations

import click

from kubejit.cli.declare import command
from kubejit.cli.grant_ref import grant_id as checked_id
from kubejit.cli.options import broker_option
from kubejit.errors import KubejitError


@command("open")
@click.argument("grant_id")
@click.option("--print", "print_only", is_flag=True, help="Only print the page's address; open no browser.")
@broker_option
def open_request(grant_id: str, print_only: bool = False, broker: str | None = None) -> None:
    """Open a request's page in your browser, and print its address.

    The page is {broker publicUrl}/ui/requests/ID: the broker says where its pages are, so the link is
    the one its notifications carry. Example: kubejit open g1a2b3c4d5e6 --print

    GRANT_ID: the request or grant id.
    """
    from kubejit.cli.client import BrokerClient
    from kubejit.local import session
    from kubejit.notify.message import request_link

    gid = checked_id(grant_id)
    url, current = session.for_broker(broker)
    with BrokerClient(url, token=current.token) as client:
        grant = client.call("GET", f"/v1/grants/{gid}")  # exists, and is yours to see
    page = grant.get("ui_url") or request_link(url, gid)  # an older broker: its own URL is its public one
    click.echo(page)
    if not print_only:
        _browse(page)


def _browse(page: str) -> None:
    import webbrowser

    try:
        opened = webbrowser.open(page)
    except webbrowser.Error as exc:
        raise KubejitError(
            f"could not start a browser: {exc}", hint="Open the address above yourself."
        ) from exc
    if not opened:
        click.echo("No browser found here: open the address above yourself (or use --print).", err=True)
