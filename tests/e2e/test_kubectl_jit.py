"""kubectl just works: the generated kubeconfig, the exec plugin and its cache, with the real kubectl.

The broker and the CLI run as processes; kubectl runs `kubejit token` itself, as it would for a user.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from kubejit.testing.controlplane import ControlPlane
from tests.broker_process import KUBECTL, KUBEJIT, Broker
from tests.polling import poll

POLL_SECONDS = 40  # the API server caches a token review for about 10 s

UNRELATED = """\
# my own clusters: kubejit must leave every byte of this alone
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://10.0.0.1:6443   # the lab
    certificate-authority: /etc/lab/ca.crt
    someFutureField: {a: 1}
  name: lab
contexts:
- context: {cluster: lab, user: me, namespace: default}
  name: lab

# staging, written by hand
- name: staging
  context:
    cluster: lab
    user: me
users:
- name: me
  user:
    client-certificate: /etc/lab/me.crt
    client-key: /etc/lab/me.key
current-context: lab
preferences: {}
myToolSettings:
  colour: blue
"""


def kubeconfig_of(broker: Broker, user: str) -> Path:
    return Path(broker.env_for(user)["KUBECONFIG"])


def cache_files(broker: Broker, user: str) -> list[Path]:
    folder = Path(broker.env_for(user)["XDG_CACHE_HOME"]) / "kubejit" / "tokens"
    return sorted(folder.glob("*.cred")) if folder.is_dir() else []


def minted_tokens(broker: Broker, grant_id: str) -> int:
    """token.minted events in the broker's own audit log: one per token the broker fetched."""
    db = sqlite3.connect(f"file:{broker.workdir / 'kubejit.db'}?mode=ro", uri=True)
    try:
        query = "SELECT count(*) FROM audit_events WHERE action = 'token.minted' AND grant_id = ?"
        return int(db.execute(query, (grant_id,)).fetchone()[0])
    finally:
        db.close()


def with_kubectl_jit(env: dict[str, str], folder: Path) -> dict[str, str]:
    """PATH with `kubectl-jit` and `kubectl_complete-jit` as pip installs them (console scripts)."""
    folder.mkdir(exist_ok=True, parents=True)
    for name, function in (("kubectl-jit", "main"), ("kubectl_complete-jit", "complete")):
        script = folder / name
        script.write_text(
            f"#!{sys.executable}\nfrom kubejit.cli.kubectl_plugin import {function}\n{function}()\n"
        )
        script.chmod(0o755)
    return {**env, "PATH": f"{folder}{os.pathsep}{env['PATH']}"}


def kept_in_order(original: str, merged: str) -> bool:
    """Every line of ``original``, byte for byte and in order, is in ``merged`` (with lines added)."""
    lines = iter(merged.splitlines(keepends=True))
    return all(any(line == other for other in lines) for line in original.splitlines(keepends=True))


def request_with_context(broker: Broker, plane: ControlPlane, namespace: str) -> tuple[str, str]:
    """`kubejit request … --use` as alice; returns (grant id, context name)."""
    done = broker.cli("alice", "request", "-c", plane.name, "-n", namespace, "-r", "view", "--use")
    grant_id = next(line.split()[1] for line in done.stdout.splitlines() if line.strip().startswith("id:"))
    context = f"jit-{plane.name}-{namespace}"
    assert f"kubectl now uses context {context}" in done.stdout, done.stdout
    return grant_id, context


def test_context_works_where_granted_until_revoked_and_leaves_the_rest_alone(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    granted, other = namespaces(control_plane, 2)
    config = kubeconfig_of(broker, "alice")
    config.parent.mkdir(parents=True)
    config.write_text(UNRELATED)
    broker.login("alice")

    grant_id, context = request_with_context(broker, control_plane, granted)
    merged = config.read_text()
    assert config.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(merged)["current-context"] == context
    assert kept_in_order(UNRELATED.replace("current-context: lab\n", ""), merged)

    pods = broker.kubectl("alice", "get", "pods")  # the context presets the granted namespace
    assert pods.returncode == 0, pods.stderr
    elsewhere = broker.kubectl("alice", "get", "pods", "-n", other)
    assert "(Forbidden)" in elsewhere.stderr, elsewhere.stderr
    wanted = f"kubejit request --cluster {control_plane.name} --namespace {other} --role view"
    why = broker.cli("alice", "why", "--", "get", "pods", "-n", other, check=False)
    assert why.returncode == 3 and f"To get this access run: {wanted}" in why.stdout, why.stdout
    piped = subprocess.run(
        [KUBEJIT, "why"], input=elsewhere.stderr, env=broker.env_for("alice"), capture_output=True, text=True
    )
    assert f"not {other}" in piped.stdout and wanted in piped.stdout, piped.stdout

    (entry,) = cache_files(broker, "alice")
    assert entry.stat().st_mode & 0o777 == 0o600
    token = entry.read_text().split('"token":"')[1].split('"')[0]
    assert len(token) > 100
    assert token not in config.read_text()
    assert "token:" not in config.read_text()

    broker.cli("alice", "revoke", grant_id, "--reason", "done")
    # First Forbidden (the RoleBinding is gone), then 401 once the API server's token cache lapses:
    # client-go runs the plugin again, which asks the broker and explains.
    ended = poll(
        lambda: broker.kubectl("alice", "get", "pods"), lambda r: "kubejit:" in r.stderr, within=POLL_SECONDS
    )
    assert ended.returncode != 0
    assert f"kubejit: grant {grant_id} (view in {granted} on cluster {control_plane.name}) was revoked by alice: done" in ended.stderr  # fmt: skip
    assert f"kubejit request --cluster {control_plane.name} --namespace {granted} --role view" in ended.stderr
    again = broker.kubectl("alice", "get", "pods")  # the tombstone answers at once, without the broker
    assert again.returncode != 0 and "was revoked" in again.stderr
    assert token not in entry.read_text()

    pruned = broker.cli("alice", "kubeconfig", "--prune")
    assert f"Removed context {context}" in pruned.stdout
    assert config.read_text() == UNRELATED.replace("current-context: lab", 'current-context: ""')


def test_fifty_kubectl_at_once_with_a_cold_cache_cause_one_token_fetch(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    (granted,) = namespaces(control_plane, 1)
    broker.login("alice")
    env = with_kubectl_jit(broker.env_for("alice"), broker.workdir / "bin")
    requested = subprocess.run(
        [KUBECTL, "jit", "request", "-c", control_plane.name, "-n", granted, "-r", "view", "--use"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert requested.returncode == 0, requested.stderr
    assert f"kubectl now uses context jit-{control_plane.name}-{granted}" in requested.stdout
    listed = subprocess.run(
        [KUBECTL, "jit", "ls", "-o", "json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    (grant,) = json.loads(listed.stdout)["data"]
    grant_id = grant["id"]
    assert grant["state"] == "active" and grant["namespaces"] == [granted]
    assert cache_files(broker, "alice") == []
    started = [
        subprocess.Popen(
            [KUBECTL, "get", "pods", "-o", "name"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(50)
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in started]
    for process in started:
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
    failures = [err for code, err in results if code != 0]
    assert failures == [], failures[:3]
    assert minted_tokens(broker, grant_id) == 1


def test_clear_errors_for_a_corrupt_cache_a_bad_kubeconfig_and_an_unreachable_broker(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    (granted,) = namespaces(control_plane, 1)
    config = kubeconfig_of(broker, "alice")
    config.parent.mkdir(parents=True)
    config.write_text(UNRELATED)
    broker.login("alice")
    grant_id, _ = request_with_context(broker, control_plane, granted)
    assert broker.kubectl("alice", "get", "pods").returncode == 0

    # A pending grant: no context, and the plugin says who must act; it never prompts.
    pending = broker.json(
        "alice", "request", "-c", control_plane.name, "-n", granted, "-r", "admin", "--reason", "x"
    )
    assert pending["state"] == "pending"
    refused = broker.cli("alice", "kubeconfig", "--grant", pending["id"], check=False)
    assert refused.returncode != 0 and f"grant {pending['id']} is pending, not active" in refused.stderr
    waiting = broker.cli("alice", "token", "--grant", pending["id"], "--broker", broker.url, check=False)
    assert waiting.returncode == 1 and waiting.stdout == ""
    assert "is waiting for approval (0/2 approvals)" in waiting.stderr
    assert f"kubejit approve {pending['id']}" in waiting.stderr

    # A corrupt cache entry is reported, removed and replaced; kubectl still works.
    (entry,) = cache_files(broker, "alice")
    entry.write_text("kubejit-token-cache 1\ngarbage")
    healed = broker.kubectl("alice", "get", "pods")
    assert healed.returncode == 0, healed.stderr
    assert f"kubejit: warning: the token cache file {entry} is corrupt; it was removed" in healed.stderr

    # Fields kubectl ignores are named and kept; a kubeconfig kubejit cannot edit is refused, untouched.
    kept = broker.cli("alice", "kubeconfig")
    assert (
        "myToolSettings (top level)" in kept.stderr and "clusters[lab].cluster.someFutureField" in kept.stderr
    )
    assert "someFutureField: {a: 1}" in config.read_text()
    broken = config.read_text().replace("contexts:\n", "contexts: {}\nnot-contexts:\n", 1)
    config.write_text(broken)
    refused = broker.cli("alice", "kubeconfig", check=False)
    assert refused.returncode != 0
    assert f"{config}:" in refused.stderr and "`contexts` must be a list" in refused.stderr
    assert "Traceback" not in refused.stderr and config.read_text() == broken
    config.write_text(UNRELATED)
    broker.cli("alice", "kubeconfig", "--grant", grant_id, "--use")

    # The broker goes away: with no cached token kubectl says so, then fails fast while backing off.
    broker.stop()
    entry.unlink()
    down = broker.kubectl("alice", "get", "pods")
    assert down.returncode != 0
    assert f"kubejit: cannot reach the kubejit broker at {broker.url}" in down.stderr
    fast = broker.kubectl("alice", "get", "pods")
    assert fast.returncode != 0 and "next try after" in fast.stderr

    # Logging out drops every cached token.
    broker.start()
    broker.cli("alice", "logout")
    assert cache_files(broker, "alice") == []
    out = broker.kubectl("alice", "get", "pods")
    assert "kubejit: you are not logged in to kubejit" in out.stderr
    assert f"kubejit login --broker {broker.url}" in out.stderr


def test_kubectl_completes_kubectl_jit_commands_and_options(tmp_path: Path) -> None:
    env = with_kubectl_jit(dict(os.environ), tmp_path / "bin")

    def complete(*words: str) -> list[str]:
        done = subprocess.run(
            [KUBECTL, "__complete", "jit", *words],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert complete("kubec") == ["kubeconfig", ":4"]
    assert complete("l") == ["login", "logout", "lock", "locks", "ls", ":4"]
    assert complete("kubeconfig", "--pr") == ["--prune", ":4"]
