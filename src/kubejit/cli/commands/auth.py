"""login / logout / whoami."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from kubejit.cli import render
from kubejit.cli.client import BrokerClient, check_broker_url
from kubejit.cli.declare import command
from kubejit.cli.options import broker_option, output_option
from kubejit.errors import InvalidInput
from kubejit.local import credentials, session

if TYPE_CHECKING:
    from kubejit.cli import login_flows  # loaded by `kubejit login` only: httpx, joserfc


@command()
@click.option("--dev-user", help="Log in as a user of the broker's embedded dev issuer.")
@click.option("--issuer", help="Which identity provider (when the broker trusts several).")
@click.option(
    "--device", is_flag=True, help="Device authorization: get a code, approve it in any browser (RFC 8628)."
)
@click.option("--no-browser", is_flag=True, help="Print the login URL instead of opening a browser.")
@broker_option
def login(
    dev_user: str | None = None,
    issuer: str | None = None,
    device: bool = False,
    no_browser: bool = False,
    broker: str | None = None,
) -> None:
    """Log in to the kubejit broker through your identity provider (or --dev-user on a dev broker).

    The session is kept in ~/.config/kubejit (mode 0600); the refresh token in the OS keyring when one
    is available, else in ~/.config/kubejit/refresh-tokens.json (mode 0600).
    """
    url = session.broker_url(broker)
    if dev_user:
        with BrokerClient(url) as client:
            answer = client.call("POST", "/v1/dev/login", json={"user": dev_user})
        path = session.save(session.Session(broker=url, token=answer["token"], user=answer["user"]))
        # soft_wrap: a path broken across lines cannot be copied; the terminal wraps it if it must.
        render.console.print(
            f"Logged in to {render.safe(url)} as [bold]{render.safe(answer['user'])}[/] "
            f"(session: {render.safe(path)}).",
            soft_wrap=True,
        )
        return
    check_broker_url(url)  # before the IdP round trip: the ID token will go there
    with BrokerClient(url) as client:
        offered = client.call("GET", "/v1/login-config")
    chosen = _choose_issuer(offered, issuer)
    import httpx

    from kubejit.cli import login_flows

    with httpx.Client(timeout=login_flows.HTTP_TIMEOUT) as http:
        meta = login_flows.metadata(http, chosen)
        if device:
            tokens = login_flows.device_login(http, meta, chosen, show=_show_device_code, waiting=_spinner)
        else:
            tokens = login_flows.browser_login(
                http, meta, chosen, open_url=_print_url if no_browser else _open_browser
            )
    with BrokerClient(url, token=tokens.id_token) as client:
        me = client.call("GET", "/v1/whoami")
    current = session.Session(
        broker=url,
        token=tokens.id_token,
        user=me["name"],
        issuer_url=chosen.issuer_url,
        client_id=chosen.client_id,
        token_endpoint=meta.token_endpoint,
    )
    kept = credentials.store(current.credential_key, tokens.refresh_token) if tokens.refresh_token else None
    path = session.save(current)
    render.console.print(
        f"Logged in to {render.safe(url)} as [bold]{render.safe(me['name'])}[/] via {render.safe(chosen.name)} "
        f"(session: {render.safe(path)}).",
        soft_wrap=True,
    )
    if me["groups"]:
        render.console.print(f"groups: {render.safe(', '.join(me['groups']))}")
    if kept:
        render.console.print(f"refresh token kept in {render.safe(kept)}", soft_wrap=True)


def _choose_issuer(offered: dict[str, Any], name: str | None) -> login_flows.IssuerLogin:
    from kubejit.cli import login_flows

    issuers = [login_flows.IssuerLogin.from_broker(i) for i in offered.get("issuers", [])]
    if not issuers:
        hint = (
            "This broker runs the dev issuer: `kubejit login --dev-user NAME`."
            if offered.get("dev_issuer")
            else ("Ask an administrator to set identity.issuers[].login in the broker config.")
        )
        raise InvalidInput("the broker offers no identity provider to log in with", hint=hint)
    if name is None and len(issuers) == 1:
        return issuers[0]
    names = ", ".join(i.name for i in issuers)
    found = next((i for i in issuers if i.name == name), None)
    if found is None:
        raise InvalidInput(
            f"say which identity provider with --issuer ({names})"
            if name is None
            else f"no identity provider '{name}' (offered: {names})"
        )
    return found


def _show_device_code(verification_uri: str, user_code: str, complete: str | None) -> None:
    render.console.print(
        f"To log in, open [bold]{render.safe(verification_uri)}[/] and enter the code [bold]{render.safe(user_code)}[/]"
    )
    if complete:
        render.console.print(f"(or open {render.safe(complete)})")
    sys.stdout.flush()


def _spinner() -> Any:
    return render.console.status("Waiting for you to approve the login in the browser...")


def _print_url(url: str) -> None:
    render.console.print("Open this URL in a browser to log in:")
    print(render.printable(url), flush=True)  # plain: a long URL must not be wrapped or styled


def _open_browser(url: str) -> None:
    import webbrowser

    if not webbrowser.open(url):
        _print_url(url)


@command()
def logout() -> None:
    """Forget the local session (and with it the cached credentials)."""
    from kubejit.exec.cache import forget_tokens

    removed = session.clear()
    dropped = forget_tokens()  # kubectl must not keep working on tokens of a session that is gone
    render.say("Logged out." if removed else "You were not logged in.")
    if dropped:
        render.say(f"Dropped {dropped} cached kubectl token(s).")


@command()
@broker_option
@output_option
def whoami(broker: str | None = None, output: render.Output = render.Output.table) -> None:
    """Show who you are to the broker, your groups, and what policy lets you request."""
    url, current = session.for_broker(broker)
    with BrokerClient(url, token=current.token) as client:
        me = client.call("GET", "/v1/whoami")
    if output is render.Output.json:
        render.as_json("WhoAmI", me)
        return
    # Names and groups come from the identity provider: printed as inert text (no Rich: a plain
    # answer need not pay its start-up).
    admin = "  admin" if me["admin"] else ""
    render.say(
        f"{render.bold(render.printable(me['name']))} (issuer {render.printable(me['issuer'])}){admin}"
    )
    render.say(f"groups: {render.printable(', '.join(me['groups']) or '-')}")
    render.say("you may request:" if me["may_request"] else "policy lets you request nothing.")
    for line in me["may_request"]:
        render.say(f"  - {render.printable(line)}")
