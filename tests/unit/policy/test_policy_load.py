"""Loading policy YAML: good input becomes the model; bad input fails with file:line:column and a hint."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kubejit.errors import PolicyError
from kubejit.policy.load import MAX_POLICY_BYTES, load_policy_file, parse_policy
from kubejit.policy.model import KUBEJIT_NAMESPACES, SYSTEM_NAMESPACES, RoleRef

pytestmark = pytest.mark.unit

ROLES = """\
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
  ops: {role: ops-role}
  cluster-viewer: {clusterRole: view, clusterScope: true}
"""


def rules(body: str) -> str:
    """A policy with ROLES (lines 1-5) and `rules:` on line 6; the body starts on line 7."""
    return ROLES + "rules:\n" + body


GOOD_RULE = """\
  - name: x
    groups: [developers]
    clusters: [dev]
    namespaces: [dev]
    roles: [view]
    approval: auto
"""


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    return caught.value


def test_full_rule_is_loaded_into_the_model() -> None:
    policy = parse_policy(
        rules("""\
  - name: payments
    users: [dev:bob]
    groups: [developers, oncall]
    clusters: [prod, "prod-?"]
    namespaces: [payments, "team-*"]
    roles: [edit, ops]
    duration: {default: 30m, max: 2h}
    approval: {approvers: 2, groups: [sre]}
    reason: required
    ticket: '^OPS-[0-9]+$'
    extendable: true
    pendingTimeout: 45m
"""),
        source="p.yaml",
    )
    (rule,) = policy.rules
    assert rule.name == "payments"
    assert rule.effect == "allow"
    assert rule.users == {"dev:bob"}
    assert rule.groups == {"developers", "oncall"}
    assert rule.clusters == ("prod", "prod-?")
    assert rule.namespaces == ("payments", "team-*")
    assert rule.roles == ("edit", "ops")
    assert (rule.default_duration, rule.max_duration) == (timedelta(minutes=30), timedelta(hours=2))
    assert (rule.approvals_required, rule.approver_groups) == (2, frozenset({"sre"}))
    assert rule.require_reason
    assert rule.ticket_pattern == "^OPS-[0-9]+$"
    assert rule.extendable
    assert not rule.break_glass
    assert rule.pending_timeout == timedelta(minutes=45)
    assert rule.source == "p.yaml:7"
    assert policy.roles["ops"] == RoleRef("ops", "Role", "ops-role")
    assert policy.roles["cluster-viewer"] == RoleRef(
        "cluster-viewer", "ClusterRole", "view", cluster_scope=True
    )
    assert policy.roles["view"].cluster_scope is False


def test_defaults_of_an_allow_rule() -> None:
    (rule,) = parse_policy(rules(GOOD_RULE)).rules
    assert (rule.default_duration, rule.max_duration) == (timedelta(hours=1), timedelta(hours=4))
    assert rule.approvals_required == 0
    assert not rule.require_reason
    assert rule.ticket_pattern is None
    assert rule.pending_timeout == timedelta(hours=1)


def test_default_duration_is_capped_by_a_short_max() -> None:
    text = rules(GOOD_RULE + "    duration: {max: 20m}\n")
    assert parse_policy(text).rules[0].default_duration == timedelta(minutes=20)


def test_deny_rule_defaults_to_everything() -> None:
    (rule,) = parse_policy(rules("  - {name: no-contractors, effect: deny, groups: [contractors]}\n")).rules
    assert rule.effect == "deny"
    assert (rule.clusters, rule.namespaces, rule.roles) == (("*",), ("*",), ("*",))


def test_break_glass_forces_a_reason_and_auto_approval() -> None:
    (rule,) = parse_policy(
        rules("""\
  - name: bg
    groups: [sre]
    clusters: ["*"]
    namespaces: ["*"]
    roles: [edit]
    breakGlass: true
""")
    ).rules
    assert rule.break_glass
    assert rule.require_reason
    assert rule.approvals_required == 0


def test_cluster_wide_rule_has_no_namespaces() -> None:
    text = rules("  - {name: cv, groups: [sre], clusters: [prod], roles: [cluster-viewer], approval: auto}\n")
    assert parse_policy(text).rules[0].namespaces == ()


def test_empty_rules_is_a_deny_all_policy_and_admin_groups_are_read() -> None:
    policy = parse_policy("roles: {}\nadminGroups: [platform-admins]\nrules: []\n")
    assert policy.rules == ()
    assert policy.admin_groups == {"platform-admins"}


def test_protected_namespaces_join_the_system_ones() -> None:
    policy = parse_policy(rules(GOOD_RULE), protected_namespaces=frozenset({"kubejit"}))
    assert policy.protected_namespaces == SYSTEM_NAMESPACES | {"kubejit"}
    # Without a broker config: kubejit's default namespaces are protected all the same.
    assert parse_policy(rules(GOOD_RULE)).protected_namespaces == SYSTEM_NAMESPACES | KUBEJIT_NAMESPACES


@pytest.mark.parametrize("namespace", ["kubejit", "kubejit-grants"])
def test_an_allow_rule_may_not_name_kubejits_own_namespaces(namespace: str) -> None:
    text = rules(GOOD_RULE.replace("namespaces: [dev]", f"namespaces: [dev, {namespace}]"))
    error = error_of(text)
    assert error.message.startswith(
        f"policy.yaml:10:23: rule 'x' grants access to '{namespace}', kubejit's own"
    )
    assert "brokerNamespace" in (error.hint or "")


def test_the_configured_broker_namespace_is_refused_and_the_default_is_then_an_ordinary_name() -> None:
    text = rules(GOOD_RULE.replace("namespaces: [dev]", "namespaces: [jit]"))
    with pytest.raises(PolicyError, match="'jit', kubejit's own namespace"):
        parse_policy(text, protected_namespaces=frozenset({"jit", "jit-grants"}))
    moved = parse_policy(
        rules(GOOD_RULE.replace("[dev]", "[kubejit]")), protected_namespaces=frozenset({"jit"})
    )
    assert moved.rules[0].namespaces == ("kubejit",)


def test_a_deny_rule_may_name_kubejits_own_namespace() -> None:
    text = rules(GOOD_RULE + "  - {name: keep-out, effect: deny, users: ['*'], namespaces: [kubejit]}\n")
    assert parse_policy(text).rules[1].namespaces == ("kubejit",)


def test_roles_mapping_is_read_only() -> None:
    policy = parse_policy(rules(GOOD_RULE))
    with pytest.raises(TypeError):
        policy.roles["x"] = RoleRef("x", "Role", "x")  # type: ignore[index]


# Each case: policy text, the exact start of the message ("policy.yaml:line:column: ..."), a word of the hint.
BAD_POLICIES = {
    "empty file": ("", "policy.yaml:1:1: the policy is empty", "rules: []"),
    "only a comment": ("# nothing\n", "policy.yaml:1:1: the policy is empty", "roles"),
    "not a mapping": ("- a\n- b\n", "policy.yaml:1:1: the policy must be a mapping, got a list", "roles"),
    "a bare string": ("hello\n", "policy.yaml:1:1: the policy must be a mapping, got a string", "roles"),
    "yaml syntax": (
        "roles: {view: [\n",
        "policy.yaml:2:1: invalid YAML: expected the node content",
        "indentation",
    ),
    "bad indentation": ("roles:\n  a: 1\n b: 2\n", "policy.yaml:3:2: invalid YAML:", "indentation"),
    "two documents": ("roles: {}\nrules: []\n---\nroles: {}\n", "policy.yaml:3:1: invalid YAML:", None),
    "tab": ("roles:\n\tview: {}\n", "policy.yaml:2:1: invalid YAML:", None),
    "alias": (
        "roles: &r {}\nrules: *r\n",
        "policy.yaml:2:8: invalid YAML: aliases (*name) are not allowed",
        None,
    ),
    "unknown top key": (
        "roles: {}\nrule: []\n",
        "policy.yaml:2:1: unknown key 'rule' in the policy (did you mean 'rules'?)",
        "adminGroups",
    ),
    "missing rules": ("roles: {}\n", "policy.yaml:1:1: the policy is missing the key 'rules'", "rules:"),
    "missing roles": ("rules: []\n", "policy.yaml:1:1: the policy is missing the key 'roles'", "roles:"),
    "duplicate top key": (
        "roles: {}\nrules: []\nrules: []\n",
        "policy.yaml:3:1: duplicate key 'rules'",
        None,
    ),
    "non-string key": (
        "roles: {}\nrules: []\n1: x\n",
        "policy.yaml:3:1: a key in the policy must be a string",
        None,
    ),
    "rules not a list": (
        "roles: {}\nrules: {}\n",
        "policy.yaml:2:8: rules must be a list, got a mapping",
        "[]",
    ),
    "rules null": ("roles: {}\nrules:\n", "policy.yaml:2:7: rules must be a list, got nothing (null)", None),
    "roles not a mapping": (
        "roles: [view]\nrules: []\n",
        "policy.yaml:1:8: roles must be a mapping",
        "clusterRole",
    ),
    "role without kind": (
        "roles:\n  view: {}\nrules: []\n",
        "policy.yaml:2:9: role 'view' must have exactly one of clusterRole or role",
        "ClusterRole",
    ),
    "role with both kinds": (
        "roles:\n  view: {clusterRole: view, role: view}\nrules: []\n",
        "policy.yaml:2:9: role 'view' must have exactly one of clusterRole or role",
        None,
    ),
    "role null": (
        "roles:\n  view:\nrules: []\n",
        "policy.yaml:2:8: role 'view' must be a mapping, got nothing",
        None,
    ),
    "role unknown key": (
        "roles:\n  view: {clusterrole: view}\nrules: []\n",
        "policy.yaml:2:10: unknown key 'clusterrole' in role 'view' (did you mean 'clusterRole'?)",
        "clusterScope",
    ),
    "role bad name": (
        "roles:\n  View: {clusterRole: view}\nrules: []\n",
        "policy.yaml:2:3: invalid role name 'View'",
        "DNS",
    ),
    "role ref with slash": (
        "roles:\n  view: {clusterRole: a/b}\nrules: []\n",
        "policy.yaml:2:23: invalid clusterRole name 'a/b'",
        None,
    ),
    "role defined twice": (
        "roles:\n  view: {clusterRole: view}\n  view: {clusterRole: edit}\nrules: []\n",
        "policy.yaml:3:3: role 'view' is defined twice",
        None,
    ),
    "namespaced role cluster-wide": (
        "roles:\n  ops: {role: ops, clusterScope: true}\nrules: []\n",
        "policy.yaml:2:20: role 'ops' is a namespaced Role and cannot be bound cluster-wide",
        "clusterRole",
    ),
    "clusterScope not a boolean": (
        "roles:\n  v: {clusterRole: v, clusterScope: 'yes'}\nrules: []\n",
        "policy.yaml:2:37: role 'v': clusterScope must be true or false, got a string",
        None,
    ),
    "rule not a mapping": (
        rules("  - x\n"),
        "policy.yaml:7:5: rule #1 must be a mapping, got a string",
        None,
    ),
    "rule without name": (
        rules("  - groups: [a]\n"),
        "policy.yaml:7:5: rule #1 is missing the key 'name'",
        "name:",
    ),
    "rule name reserved": (
        rules(GOOD_RULE.replace("name: x", "name: default-deny")),
        "policy.yaml:7:11: invalid rule name 'default-deny'",
        "reserved",
    ),
    "rule name with space": (
        rules(GOOD_RULE.replace("name: x", "name: my rule")),
        "policy.yaml:7:11: invalid rule name 'my rule'",
        "DNS",
    ),
    "duplicate rule names": (
        rules(GOOD_RULE + GOOD_RULE),
        "policy.yaml:13:11: duplicate rule name 'x' (first defined on line 7)",
        "unique",
    ),
    "unknown rule key": (
        rules(GOOD_RULE + "    namespace: [dev]\n"),
        "policy.yaml:13:5: unknown key 'namespace' in rule #1 (did you mean 'namespaces'?)",
        "pendingTimeout",
    ),
    "unknown role in rule": (
        rules(GOOD_RULE.replace("roles: [view]", "roles: [view, admn]")),
        "policy.yaml:11:19: unknown role 'admn' in rule 'x' (known: cluster-viewer, edit, ops, view)",
        "top-level roles",
    ),
    "effect misspelled": (
        rules(GOOD_RULE + "    effect: alow\n"),
        "policy.yaml:13:13: rule 'x': effect must be allow or deny, not 'alow' (did you mean 'allow'?)",
        None,
    ),
    "nobody": (
        rules(GOOD_RULE.replace("    groups: [developers]\n", "")),
        "policy.yaml:7:5: rule 'x' names no users or groups, so it applies to nobody",
        "users: ['*']",
    ),
    "empty groups and no users": (
        rules(GOOD_RULE.replace("groups: [developers]", "groups: []")),
        "policy.yaml:8:13: rule 'x': groups must not be empty",
        None,
    ),
    "star group": (
        rules(GOOD_RULE.replace("groups: [developers]", "groups: ['*']")),
        "policy.yaml:8:13: rule 'x': '*' is not a group",
        "users: ['*']",
    ),
    "groups as a string": (
        rules(GOOD_RULE.replace("groups: [developers]", "groups: developers")),
        "policy.yaml:8:13: rule 'x': groups must be a list, got a string",
        "[a, b]",
    ),
    "duplicate group": (
        rules(GOOD_RULE.replace("groups: [developers]", "groups: [a, b, a]")),
        "policy.yaml:8:20: 'a' appears twice in rule 'x': groups",
        None,
    ),
    "boolean namespace": (
        rules(GOOD_RULE.replace("namespaces: [dev]", "namespaces: [dev, no]")),
        "policy.yaml:10:23: an entry of rule 'x': namespaces must be a string, got a boolean",
        "Quote",
    ),
    "bad namespace": (
        rules(GOOD_RULE.replace("namespaces: [dev]", "namespaces: [Dev]")),
        "policy.yaml:10:18: invalid name or pattern 'Dev' in rule 'x': namespaces",
        "Globs",
    ),
    "bracket glob": (
        rules(GOOD_RULE.replace("namespaces: [dev]", "namespaces: ['team-[ab]']")),
        "policy.yaml:10:18: invalid name or pattern 'team-[ab]'",
        None,
    ),
    "bad cluster": (
        rules(GOOD_RULE.replace("clusters: [dev]", "clusters: [prod_eu]")),
        "policy.yaml:9:16: invalid name or pattern 'prod_eu' in rule 'x': clusters",
        None,
    ),
    "allow without clusters": (
        rules(GOOD_RULE.replace("    clusters: [dev]\n", "")),
        "policy.yaml:7:5: allow rule 'x' is missing the key 'clusters'",
        "['*']",
    ),
    "allow without namespaces": (
        rules(GOOD_RULE.replace("    namespaces: [dev]\n", "")),
        "policy.yaml:7:5: allow rule 'x' is missing the key 'namespaces'",
        None,
    ),
    "allow without roles": (
        rules(GOOD_RULE.replace("    roles: [view]\n", "")),
        "policy.yaml:7:5: allow rule 'x' is missing the key 'roles'",
        None,
    ),
    "allow without approval": (
        rules(GOOD_RULE.replace("    approval: auto\n", "")),
        "policy.yaml:7:5: allow rule 'x' is missing the key 'approval'",
        "approval: auto",
    ),
    "bad duration": (
        rules(GOOD_RULE + "    duration: {default: 1hour, max: 4h}\n"),
        "policy.yaml:13:25: rule 'x': duration default: invalid duration '1hour'",
        "30m",
    ),
    "duration as a number": (
        rules(GOOD_RULE + "    duration: {max: 30}\n"),
        "policy.yaml:13:21: rule 'x': duration max must be a string, got a number",
        None,
    ),
    "duration too long": (
        rules(GOOD_RULE + "    duration: {max: 40d}\n"),
        "policy.yaml:13:21: rule 'x': duration max: duration '40d' is longer than 31d",
        None,
    ),
    "duration as a scalar": (
        rules(GOOD_RULE + "    duration: 2h\n"),
        "policy.yaml:13:15: rule 'x': duration must be a mapping, got a string",
        "default, max",
    ),
    "duration without max": (
        rules(GOOD_RULE + "    duration: {default: 1h}\n"),
        "policy.yaml:13:15: rule 'x': duration is missing the key 'max'",
        None,
    ),
    "default longer than max": (
        rules(GOOD_RULE + "    duration:\n      default: 5h\n      max: 4h\n"),
        "policy.yaml:14:16: rule 'x': default duration 5h is longer than max 4h",
        "Lower",
    ),
    "bad pending timeout": (
        rules(GOOD_RULE + "    pendingTimeout: 0s\n"),
        "policy.yaml:13:21: rule 'x': pendingTimeout: duration '0s' must be greater than zero",
        None,
    ),
    "approval misspelled": (
        rules(GOOD_RULE.replace("approval: auto", "approval: autp")),
        "policy.yaml:12:15: rule 'x': approval must be auto or a mapping, not 'autp' (did you mean 'auto'?)",
        None,
    ),
    "approvers without groups": (
        rules(GOOD_RULE.replace("approval: auto", "approval: {approvers: 1}")),
        "policy.yaml:12:15: rule 'x' needs 1 approver(s) but names no approver groups",
        "groups:",
    ),
    "negative approvers": (
        rules(GOOD_RULE.replace("approval: auto", "approval: {approvers: -1, groups: [sre]}")),
        "policy.yaml:12:27: rule 'x': approvers must be 0 or more, not -1",
        None,
    ),
    "approvers as text": (
        rules(GOOD_RULE.replace("approval: auto", "approval: {approvers: two, groups: [sre]}")),
        "policy.yaml:12:27: rule 'x': approval approvers must be a whole number, got a string",
        None,
    ),
    "approvers as boolean": (
        rules(GOOD_RULE.replace("approval: auto", "approval: {approvers: true, groups: [sre]}")),
        "policy.yaml:12:27: rule 'x': approval approvers must be a whole number, got a boolean",
        None,
    ),
    "approval unknown key": (
        rules(GOOD_RULE.replace("approval: auto", "approval: {approvers: 1, group: [sre]}")),
        "policy.yaml:12:30: unknown key 'group' in rule 'x': approval (did you mean 'groups'?)",
        None,
    ),
    "bad regex": (
        rules(GOOD_RULE + "    ticket: '^OPS-[0-9+$'\n"),
        "policy.yaml:13:13: rule 'x': ticket pattern '^OPS-[0-9+$' is not a valid regular expression",
        "single quotes",
    ),
    "empty ticket pattern": (
        rules(GOOD_RULE + "    ticket: ''\n"),
        "policy.yaml:13:13: rule 'x': ticket pattern is empty",
        None,
    ),
    "reason misspelled": (
        rules(GOOD_RULE + "    reason: requried\n"),
        "policy.yaml:13:13: rule 'x': reason must be required or optional, not 'requried' (did you mean 'required'?)",
        None,
    ),
    "reason as boolean": (
        rules(GOOD_RULE + "    reason: true\n"),
        "policy.yaml:13:13: rule 'x': reason must be a string, got a boolean",
        None,
    ),
    "extendable as string": (
        rules(GOOD_RULE + "    extendable: 'true'\n"),
        "policy.yaml:13:17: rule 'x': extendable must be true or false, got a string",
        None,
    ),
    "break-glass with approvers": (
        rules(
            GOOD_RULE.replace("approval: auto", "approval: {approvers: 1, groups: [sre]}")
            + "    breakGlass: true\n"
        ),
        "policy.yaml:12:15: break-glass rule 'x' cannot require approvals",
        "approval: auto",
    ),
    "break-glass with optional reason": (
        rules(GOOD_RULE + "    breakGlass: true\n    reason: optional\n"),
        "policy.yaml:14:13: break-glass rule 'x' must require a reason",
        None,
    ),
    "deny rule with approval": (
        rules("  - name: d\n    effect: deny\n    groups: [a]\n    approval: auto\n"),
        "policy.yaml:10:5: 'approval' has no meaning in deny rule 'd'",
        "deny rule takes only",
    ),
    "cluster-wide role mixed": (
        rules(GOOD_RULE.replace("roles: [view]", "roles: [view, cluster-viewer]")),
        "policy.yaml:11:12: rule 'x' mixes the cluster-wide role 'cluster-viewer' with namespaced roles",
        "rule of their own",
    ),
    "cluster-wide role with namespaces": (
        rules(GOOD_RULE.replace("roles: [view]", "roles: [cluster-viewer]")),
        "policy.yaml:10:5: rule 'x' grants the cluster-wide role 'cluster-viewer', which namespaces cannot limit",
        "Remove namespaces",
    ),
    "user with space": (
        rules(GOOD_RULE.replace("groups: [developers]", "users: ['dev: alice']")),
        "policy.yaml:8:13: invalid name 'dev: alice' in rule 'x': users",
        None,
    ),
    "admin groups not a list": (
        "roles: {}\nadminGroups: platform-admins\nrules: []\n",
        "policy.yaml:2:14: adminGroups must be a list, got a string",
        None,
    ),
    "tagged value": (
        rules(GOOD_RULE.replace("approval: auto", "approval: !!python/name:os.system ''")),
        "policy.yaml:12:15: rule 'x': approval must be a mapping, got a value tagged",
        None,
    ),
}


@pytest.mark.parametrize(("text", "message", "hint"), BAD_POLICIES.values(), ids=BAD_POLICIES.keys())
def test_bad_policy_is_reported_with_its_position(text: str, message: str, hint: str | None) -> None:
    error = error_of(text)
    assert error.message.startswith(message), error.message
    assert error.hint
    if hint is not None:
        assert hint in error.hint


def test_source_name_is_used_in_errors() -> None:
    with pytest.raises(PolicyError, match=r"^prod/policy\.yaml:2:1: unknown key"):
        parse_policy("roles: {}\nrule: []\n", source="prod/policy.yaml")


def test_yaml_errors_are_chained() -> None:
    error = error_of("roles: {view: [\n")
    assert error.__cause__ is not None


def test_deeply_nested_yaml_is_an_error_not_a_crash() -> None:
    error = error_of("roles: " + "[" * 5000 + "]" * 5000 + "\nrules: []\n")
    assert error.message.startswith("policy.yaml")


def test_oversized_text_is_refused() -> None:
    with pytest.raises(PolicyError, match="larger than 1 MiB"):
        parse_policy("#" * (MAX_POLICY_BYTES + 1))


def test_load_policy_file_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("\ufeff# politique: déploiement\n" + rules(GOOD_RULE), encoding="utf-8")
    policy = load_policy_file(path)
    assert policy.rules[0].source == f"{path}:8"


def test_load_policy_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("roles: {}\nrule: []\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=f"^{path}:2:1: unknown key 'rule'"):
        load_policy_file(str(path))


def test_an_alias_in_the_policy_file_is_refused_with_its_position(tmp_path: Path) -> None:
    """The same parse step as the broker config (yamlsource.compose_yaml): an anchor is read, its alias refused."""
    path = tmp_path / "policy.yaml"
    path.write_text(rules(GOOD_RULE).replace("roles:\n", "roles: &all\n", 1) + "workloads: *all\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    lines = path.read_text().count("\n")
    assert caught.value.message.startswith(
        f"{path}:{lines}:12: invalid YAML: aliases (*name) are not allowed"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file not found") as caught:
        load_policy_file(tmp_path / "nope.yaml")
    assert caught.value.hint


def test_directory_is_not_a_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy_file(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"roles: {}\nrules: []\n# \xff\xfe\n")
    with pytest.raises(PolicyError, match=r"not valid UTF-8 \(bad byte at offset 22\)"):
        load_policy_file(path)


def test_file_larger_than_one_mib(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"#" * (MAX_POLICY_BYTES + 1))
    with pytest.raises(PolicyError, match="larger than 1 MiB"):
        load_policy_file(path)
