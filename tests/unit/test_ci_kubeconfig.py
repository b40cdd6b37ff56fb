"""kubejit ci kubeconfig: bad input fails before any network call, with a hint and no token echoed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubejit.cli.client import BrokerClient
from kubejit.cli.commands import ci
from kubejit.errors import AuthenticationFailed, InvalidInput
from kubejit.local.private_files import write_private

pytestmark = pytest.mark.unit
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
BROKER = "http://127.0.0.1:9"  # never reached: every case fails before the exchange


def run(tmp_path: Path, *args: str) -> BaseException | None:
    """`kubejit ci kubeconfig ...`."""
    result = CliRunner().invoke(
        ci.app, ["kubeconfig", "--broker", BROKER, "--out", str(tmp_path / "kc"), *args]
    )
    return result.exception


@pytest.mark.parametrize(
    ("args", "env", "error", "words"),
    [
        ((), {}, InvalidInput, "exactly one job token source"),
        (("--token-env", "JOB", "--github"), {"JOB": JWT}, InvalidInput, "got --token-env, --github"),
        (("--token-env", "JOB"), {}, InvalidInput, "JOB is empty or unset"),
        (("--token-env", "JOB"), {"JOB": "s3cr3t-not-a-jwt"}, InvalidInput, "$JOB does not hold a JWT"),
        (("--github", "--audience", "a"), {}, AuthenticationFailed, "id-token: write"),
        (
            ("--github",),
            {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"},
            InvalidInput,
            "--github needs --audience",
        ),
    ],
)
def test_bad_token_sources_are_refused_before_the_broker_is_called(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    error: type[Exception],
    words: str,
) -> None:
    for name in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "JOB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exc = run(tmp_path, *args)
    assert isinstance(exc, error)
    said = f"{exc} / {getattr(exc, 'hint', None)}"
    assert words in said and "None" not in said  # always a hint
    assert "s3cr3t" not in said
    assert not (tmp_path / "kc").exists()


def test_token_files_must_exist_and_hold_a_jwt(tmp_path: Path) -> None:
    exc = run(tmp_path, "--token-file", str(tmp_path / "missing"))
    assert isinstance(exc, InvalidInput) and "cannot read the token file" in str(exc)
    (tmp_path / "big").write_text("a." * 9000)
    exc = run(tmp_path, "--token-file", str(tmp_path / "big"))
    assert isinstance(exc, InvalidInput) and "does not hold a JWT" in str(exc)


def test_the_kubeconfig_is_written_0600_and_replaces_the_old_one_whole(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "kubeconfig"
    write_private(out, "first")
    write_private(out, "second")
    assert out.read_text() == "second"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["kubeconfig"]  # no temporary file left behind


def test_a_directory_as_out_is_refused_before_the_job_token_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB", JWT)
    result = CliRunner().invoke(
        ci.app, ["kubeconfig", "--broker", BROKER, "--out", str(tmp_path), "--token-env", "JOB"]
    )
    assert isinstance(result.exception, InvalidInput) and "is a directory" in str(result.exception)
    assert JWT not in f"{result.exception} {result.exception.hint}"


def test_an_unwritable_out_is_one_clear_error_naming_the_grant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB", JWT)
    answer = {"kubeconfig": "users: [{user: {token: s3cr3t}}]", "grant_id": "g42"}
    monkeypatch.setattr(BrokerClient, "call", lambda *_args, **_kw: answer)
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "kubeconfig"  # its parent is a file: nothing can be written
    result = CliRunner().invoke(
        ci.app, ["kubeconfig", "--broker", BROKER, "--out", str(out), "--token-env", "JOB"]
    )
    exc = result.exception
    assert isinstance(exc, InvalidInput) and "cannot write the kubeconfig" in str(exc) and "g42" in str(exc)
    assert "s3cr3t" not in f"{exc} {exc.hint} {result.output}"


@pytest.mark.parametrize("broker", ["http://kubejit.example.com", "kubejit.example.com", "ftp://127.0.0.1"])
def test_the_job_token_never_leaves_in_clear_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str
) -> None:
    monkeypatch.setenv("JOB", JWT)
    result = CliRunner().invoke(
        ci.app, ["kubeconfig", "--broker", broker, "--out", str(tmp_path / "kc"), "--token-env", "JOB"]
    )
    assert isinstance(result.exception, InvalidInput) and "https://" in str(result.exception)


def test_the_summary_shows_claims_as_text_and_never_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB", JWT)
    answer = {
        "kubeconfig": "users: [{user: {token: s3cr3t}}]",
        "access_token": "s3cr3t",
        "grant_id": "g7",
        "principal": "github:repo:acme/app:environment:[/bold]prod",  # not Rich markup
        "cluster": "staging",
        "namespaces": ["app"],
        "role": "edit",
        "expires_in": 600,
    }
    monkeypatch.setattr(BrokerClient, "call", lambda *_args, **_kw: answer)
    out = tmp_path / "kc"
    result = CliRunner().invoke(
        ci.app, ["kubeconfig", "--broker", BROKER, "--out", str(out), "--token-env", "JOB"]
    )
    assert result.exception is None, result.output
    assert "environment:[/bold]prod" in result.output and "grant g7" in result.output
    assert "s3cr3t" not in result.output and JWT not in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
