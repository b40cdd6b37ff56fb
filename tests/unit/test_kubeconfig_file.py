"""The kubeconfig merge: kubejit's entries in, out and replaced; every other byte left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubejit.errors import ConfigError
from kubejit.kubeconfig_file import (
    JitContext,
    KubeconfigLock,
    merge,
    parse_kubeconfig,
    plan_contexts,
    read_kubeconfig,
    write_kubeconfig,
)

pytestmark = pytest.mark.unit

THEIRS = """\
# hand-written; comments and odd layout must survive
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://10.0.0.1:6443   # lab
    futureField: 1
  name: lab
contexts:
- context: {cluster: lab, user: me}
  name: lab

# between entries
- name: other
  context:
    cluster: lab
    user: me
users:
- name: me
  user: {token: not-kubejits}
current-context: lab
extra: kept
"""


def jit(grant: str = "g1", *, namespace: str = "team-a", server: str = "https://1.2.3.4") -> JitContext:
    return JitContext(
        grant_id=grant,
        context=f"jit-dev-{namespace}",
        cluster="dev",
        namespace=namespace,
        server=server,
        certificate_authority_data="Q0E=",
        broker="http://127.0.0.1:8080",
        command="/opt/kubejit/bin/kubejit",
    )


def test_adding_then_pruning_gives_back_the_same_bytes() -> None:
    added = merge(parse_kubeconfig(THEIRS, source="kc"), contexts=[jit()])
    assert added.added == ["jit-dev-team-a"] and added.current_context == "lab"
    data = yaml.safe_load(added.text)
    assert [c["name"] for c in data["contexts"]] == ["lab", "other", "jit-dev-team-a"]
    assert data["extra"] == "kept"
    pruned = merge(parse_kubeconfig(added.text, source="kc"), remove_grants=["g1"])
    assert pruned.removed == ["jit-dev-team-a"]
    assert pruned.text == THEIRS


def test_the_context_runs_the_exec_plugin_and_holds_no_credential() -> None:
    data = yaml.safe_load(
        merge(parse_kubeconfig("", source="kc"), contexts=[jit()], use="jit-dev-team-a").text
    )
    (user,) = data["users"]
    assert user == {
        "name": "jit-g1",
        "user": {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "/opt/kubejit/bin/kubejit",
                "args": ["token", "--grant", "g1", "--broker", "http://127.0.0.1:8080"],
                "interactiveMode": "Never",
                "provideClusterInfo": False,
                "installHint": "kubejit runs this context's credential plugin: pip install kubejit",
            }
        },
    }
    assert data["contexts"][0]["context"] == {"cluster": "jit-dev", "user": "jit-g1", "namespace": "team-a"}
    assert data["clusters"][0]["cluster"] == {
        "server": "https://1.2.3.4",
        "certificate-authority-data": "Q0E=",
    }
    assert data["current-context"] == "jit-dev-team-a"
    assert data["kind"] == "Config" and data["apiVersion"] == "v1"


def test_rewriting_replaces_only_kubejits_entry_and_is_idempotent() -> None:
    first = merge(parse_kubeconfig(THEIRS, source="kc"), contexts=[jit()]).text
    same = merge(parse_kubeconfig(first, source="kc"), contexts=[jit()])
    assert same.text == first and same.updated == ["jit-dev-team-a"]
    moved = merge(parse_kubeconfig(first, source="kc"), contexts=[jit(server="https://5.6.7.8")]).text
    assert first.replace("https://1.2.3.4", "https://5.6.7.8") == moved


def test_use_sets_current_context_and_pruning_it_clears_it() -> None:
    used = merge(parse_kubeconfig(THEIRS, source="kc"), contexts=[jit()], use="jit-dev-team-a").text
    assert yaml.safe_load(used)["current-context"] == "jit-dev-team-a"
    pruned = merge(parse_kubeconfig(used, source="kc"), remove_grants=["g1"]).text
    assert pruned == THEIRS.replace("current-context: lab", 'current-context: ""')


def test_a_cluster_entry_stays_while_another_grant_uses_it() -> None:
    both = merge(parse_kubeconfig("", source="kc"), contexts=[jit("g1"), jit("g2", namespace="team-b")]).text
    one = yaml.safe_load(merge(parse_kubeconfig(both, source="kc"), remove_grants=["g1"]).text)
    assert [c["name"] for c in one["contexts"]] == ["jit-dev-team-b"]
    assert [c["name"] for c in one["clusters"]] == ["jit-dev"]
    assert [u["name"] for u in one["users"]] == ["jit-g2"]


@pytest.mark.parametrize("empty", ["clusters: null\ncontexts: []\nusers:\n", ""])
def test_empty_or_missing_sections_become_lists(empty: str) -> None:
    text = "apiVersion: v1\nkind: Config\n" + empty
    data = yaml.safe_load(merge(parse_kubeconfig(text, source="kc"), contexts=[jit()]).text)
    assert [len(data[s]) for s in ("clusters", "contexts", "users")] == [1, 1, 1]


def test_unknown_fields_are_reported_and_kept() -> None:
    config = parse_kubeconfig(THEIRS, source="kc")
    assert config.unknown == ["extra (top level)", "clusters[lab].cluster.futureField"]
    assert "    futureField: 1\n" in merge(config, contexts=[jit()]).text


def test_a_context_kubejit_did_not_write_is_never_overwritten() -> None:
    theirs = THEIRS.replace("name: other", "name: jit-dev-team-a")
    with pytest.raises(ConfigError, match="did not write") as refused:
        merge(parse_kubeconfig(theirs, source="kc"), contexts=[jit()])
    assert "rename-context" in (refused.value.hint or "")


def test_a_user_entry_that_only_looks_like_kubejits_is_not_pruned() -> None:
    theirs = THEIRS.replace("- name: me\n", "- name: jit-g1\n").replace("user: me", "user: jit-g1")
    config = parse_kubeconfig(theirs, source="kc")
    assert config.owned_users() == {} and config.owned_contexts() == {}
    assert merge(config, remove_grants=["g1"]).text == theirs


def test_entries_of_the_wrong_shape_are_left_alone_not_a_crash() -> None:
    theirs = (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster: 7\n"
        "users:\n- name: jit-g1\n  user: text\n- name: jit-g2\n  user: {exec: [token]}\n"
        "contexts:\n- name: a\n  context: text\n- name: b\n  context:\n    user: [jit-g1]\n    cluster: [x]\n"
    )
    config = parse_kubeconfig(theirs, source="kc")
    assert config.owned_users() == {} and config.owned_contexts() == {}
    assert merge(config, remove_grants=["g1", "g2"]).text == theirs
    added = merge(config, contexts=[jit("g3")])
    assert merge(parse_kubeconfig(added.text, source="kc"), remove_grants=["g3"]).text == theirs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: v1\nclusters: {a: 1}\n", "kc:2: `clusters` must be a list"),
        ("apiVersion: v1\ncontexts:\n- context: {}\n", r"kc:3: contexts\[0\] has no name"),
        ('{"apiVersion": "v1", "kind": "Config"}', "flow style"),
        ("apiVersion: v1\nusers: [{name: a, user: {}}]\n", "flow-style list"),
        ("apiVersion: v1\nusers:\n- {name: a, user: {}}\n", r"users\[0\] is in flow style"),
        ("kind: Pod\napiVersion: v1\n", "not a kubeconfig"),
        ("- a\n- b\n", "not a kubeconfig"),
        ("apiVersion: v1\nclusters: [\n", "kc:3:1: invalid YAML"),
    ],
)
def test_files_it_cannot_edit_safely_are_refused_with_the_place(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_kubeconfig(text, source="kc")


def test_plan_names_contexts_by_cluster_and_namespace_newest_grant_first() -> None:
    clusters = {"dev": {"name": "dev", "server": "https://d", "certificate_authority_data": None}}
    grants = [
        {"id": "gold", "cluster": "dev", "namespaces": ["a"], "activated_at": "2026-01-01T00:00:00"},
        {"id": "gnew", "cluster": "dev", "namespaces": ["a", "b"], "activated_at": "2026-01-02T00:00:00"},
    ]
    planned = plan_contexts(grants, clusters, broker="http://b", command="kubejit")
    assert [(p.grant_id, p.context) for p in planned] == [("gnew", "jit-dev-a"), ("gold", "jit-dev-a-gold")]
    assert planned[0].certificate_authority_data is None
    with pytest.raises(ConfigError, match="does not say where cluster dev is"):
        plan_contexts(grants, {}, broker="http://b", command="kubejit")


def test_write_is_private_and_follows_a_symlink(tmp_path: Path) -> None:
    tmp_path = tmp_path / "kube"
    tmp_path.mkdir()
    real = tmp_path / "real-config"
    real.write_text(THEIRS)
    real.chmod(0o644)
    link = tmp_path / "config"
    link.symlink_to(real)
    write_kubeconfig(str(link), "apiVersion: v1\n")
    assert link.is_symlink() and real.read_text() == "apiVersion: v1\n"
    assert real.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "real-config"]  # no temp file left
    assert read_kubeconfig(str(tmp_path / "missing")).entries == {"clusters": [], "contexts": [], "users": []}


def test_a_kubeconfig_in_a_folder_that_cannot_exist_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    target = str(tmp_path / "file" / "config")
    with (
        pytest.raises(ConfigError, match="cannot lock the kubeconfig: File exists"),
        KubeconfigLock(target),
    ):
        pass
    with pytest.raises(ConfigError, match="cannot write the kubeconfig"):
        write_kubeconfig(target, "apiVersion: v1\n")


def test_a_cluster_wide_grant_gets_a_cluster_wide_context_in_the_default_namespace() -> None:
    clusters = {"dev": {"name": "dev", "server": "https://d", "certificate_authority_data": None}}
    grants = [{"id": "gw", "cluster": "dev", "namespaces": [], "activated_at": "2026-01-01T00:00:00"}]
    (planned,) = plan_contexts(grants, clusters, broker="http://b", command="kubejit")
    assert (planned.context, planned.namespace) == ("jit-dev-cluster-wide", "default")
