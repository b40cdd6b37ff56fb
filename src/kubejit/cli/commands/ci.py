"""kubejit ci kubeconfig: a pipeline trades its OIDC job token for a short grant and a kubeconfig.

No login and no stored secret: the job token (GitHub Actions, GitLab CI, a file or an environment
variable) goes to the broker's ``POST /v1/token-exchange``; the answer's kubeconfig is written 0600.
Neither token is ever printed. See docs/ci.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from kubejit.checks import is_loopback
from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.declare import command, group
from kubejit.cli.options import output_option, path_type
from kubejit.errors import AuthenticationFailed, InvalidInput
from kubejit.local.private_files import write_private

app = group("ci", help="For CI/CD pipelines: exchange the job's OIDC token for access.")

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
MAX_TOKEN_BYTES = 16 * 1024
_RUNTIME_HINT = "A GitHub Actions runtime problem: re-run the job; if it persists, see githubstatus.com."


@command(group=app)
@click.option(
    "--broker",
    required=True,
    envvar="KUBEJIT_BROKER",
    show_envvar=True,
    help="Broker URL: https:// (http:// only on loopback).",
)
@click.option("--out", required=True, type=path_type(), help="Where to write the kubeconfig (mode 0600).")
@click.option("--cluster", "-c", help="Cluster (default: the policy rule's only one).")
@click.option("--namespace", "-n", multiple=True, help="Namespace; repeat for several.")
@click.option("--role", "-r", help="Role (default: the rule's only one).")
@click.option("--for", "duration", help="How long, e.g. 10m (default: the rule's).")
@click.option("--token-file", type=path_type(), help="Read the job token from a file.")
@click.option("--token-env", help="Read the job token from this environment variable.")
@click.option(
    "--github",
    is_flag=True,
    help="Fetch the job token from GitHub Actions (needs permissions: id-token: write).",
)
@click.option(
    "--audience", envvar="KUBEJIT_AUDIENCE", show_envvar=True, help="With --github: the broker's audience."
)
@output_option
def kubeconfig(
    broker: str,
    out: Path,
    cluster: str | None = None,
    namespace: Sequence[str] = (),
    role: str | None = None,
    duration: str | None = None,
    token_file: Path | None = None,
    token_env: str | None = None,
    github: bool = False,
    audience: str | None = None,
    output: render.Output = render.Output.table,
) -> None:
    """Exchange this job's OIDC token for a short grant; write a ready kubeconfig to --out.

    Example: kubejit ci kubeconfig --broker https://kubejit.example.com --github --audience kubejit \\
        --cluster staging --namespace app --out "$RUNNER_TEMP/kubeconfig"
    """
    _check_broker_url(broker)
    if out.is_dir():  # checked before the exchange: the job token can be spent only once
        raise InvalidInput(f"--out {out} is a directory", hint="Name the kubeconfig file to write.")
    subject = _job_token(token_file=token_file, token_env=token_env, github=github, audience=audience)
    scope = [f"namespace:{n}" for n in namespace]
    scope += [f"role:{role}"] if role else []
    scope += [f"duration:{duration}"] if duration else []
    body: dict[str, str] = {
        "grant_type": GRANT_TYPE,
        "subject_token": subject,
        "subject_token_type": JWT_TYPE,
    }
    if cluster:
        body["audience"] = cluster
    if scope:
        body["scope"] = " ".join(scope)
    with BrokerClient(broker.rstrip("/")) as client:
        answer = client.call("POST", "/v1/token-exchange", json=body)
    try:
        write_private(out, str(answer["kubeconfig"]))
    except OSError as exc:
        raise InvalidInput(
            f"cannot write the kubeconfig to {out}: {exc.strerror or type(exc).__name__}; "
            f"grant {answer.get('grant_id')} is active until it expires",
            hint='Choose a writable --out, e.g. "$RUNNER_TEMP/kubeconfig".',
        ) from exc
    summary = {
        k: answer.get(k) for k in ("grant_id", "principal", "cluster", "namespaces", "role", "expires_in")
    }
    summary["kubeconfig"] = str(out)
    _render(summary, output)


def _check_broker_url(broker: str) -> None:
    """The job token is a bearer credential: it goes over https, or plain http to this machine only."""
    parts = urlsplit(broker)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise InvalidInput(
        f"--broker must be an https:// URL (http:// only on a loopback address), not {broker!r}",
        hint="The job token would cross the network in clear text: use the broker's https:// address.",
    )


def _render(summary: dict[str, Any], output: render.Output) -> None:
    if output is render.Output.json:
        render.as_json("CIKubeconfig", summary)
        return
    render.console.print(
        render.printable(
            f"Wrote {summary['kubeconfig']}: role {summary['role']} in {', '.join(summary['namespaces'])} "
            f"on cluster {summary['cluster']} for {summary['expires_in']}s (grant {summary['grant_id']}, "
            f"as {summary['principal']})."
        ),
        markup=False,  # the principal comes from the job token's claims: shown as it is
    )


def _job_token(*, token_file: Path | None, token_env: str | None, github: bool, audience: str | None) -> str:
    chosen = [
        name
        for name, on in (("--token-file", token_file), ("--token-env", token_env), ("--github", github))
        if on
    ]
    if len(chosen) != 1:
        raise InvalidInput(
            "give exactly one job token source" + (f" (got {', '.join(chosen)})" if chosen else ""),
            hint="Use --github in GitHub Actions, --token-env CI_JOB_JWT-style variables in GitLab, or --token-file.",
        )
    if github:
        return github_job_token(audience)
    if token_env:
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise InvalidInput(
                f"the environment variable {token_env} is empty or unset",
                hint="In GitLab CI, declare it under id_tokens: with the broker's audience (docs/ci.md).",
            )
        return _checked(value, f"${token_env}")
    assert token_file is not None
    try:
        with token_file.open("rb") as stream:
            data = stream.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read the token file {token_file}: {exc.strerror or exc}") from exc
    return _checked(data.decode("utf-8", errors="replace").strip(), str(token_file))


def _checked(token: str, where: str) -> str:
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        # The value is not echoed: it may be a secret, just not the one expected.
        raise InvalidInput(f"{where} does not hold a JWT", hint="Pass the CI system's OIDC job token.")
    return token


def github_job_token(audience: str | None) -> str:
    """Ask the GitHub Actions runtime for this job's OIDC token, for the broker's audience."""
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not request_token:
        raise AuthenticationFailed(
            "this job cannot get an OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN are not set",
            hint="Give the job `permissions: id-token: write` (pull requests from forks never get it).",
        )
    if not audience:
        raise InvalidInput(
            "--github needs --audience (the broker's workload audience)", hint="See docs/ci.md."
        )
    import httpx

    try:
        response = httpx.get(
            url,
            params={"audience": audience},
            headers={"authorization": f"bearer {request_token}", "accept": "application/json"},
            timeout=30,
        )
    except httpx.TransportError as exc:
        raise AuthenticationFailed(
            f"cannot reach the GitHub OIDC token service: {type(exc).__name__}", hint=_RUNTIME_HINT
        ) from exc
    if response.status_code != 200:
        raise AuthenticationFailed(
            f"the GitHub OIDC token service answered HTTP {response.status_code}", hint=_RUNTIME_HINT
        )
    try:
        value = response.json().get("value")
    except (ValueError, AttributeError) as exc:
        raise AuthenticationFailed(
            "the GitHub OIDC token service did not answer JSON", hint=_RUNTIME_HINT
        ) from exc
    if not isinstance(value, str):
        raise AuthenticationFailed("the GitHub OIDC token service sent no token", hint=_RUNTIME_HINT)
    return _checked(value, "the GitHub OIDC token")
