"""Merging kubejit's contexts into a kubeconfig without touching anything else in it.

A YAML round trip would reorder keys, drop comments and drop the unknown fields kubectl ignores, so
the merge edits text: it finds each list entry's lines with PyYAML's node marks and replaces, deletes
or appends only the entries kubejit owns; every other byte stays where it was. The result is parsed
again and compared with what was meant before anyone writes it. Pure: text in, text out; the file
I/O (atomic, 0600, locked) is in ``write_kubeconfig``.

kubejit owns a user entry named ``jit-<grant>`` whose exec plugin runs ``kubejit token``, the
contexts that use such a user, and the ``jit-<cluster>`` cluster entries those contexts point at.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubejit.errors import ConfigError, KubejitError
from kubejit.local.private_files import FileLock, write_private
from kubejit.yamlsource import parse_yaml

EXEC_API_VERSION = "client.authentication.k8s.io/v1"
SECTIONS = ("clusters", "contexts", "users")
ENTRY_KEY = {"clusters": "cluster", "contexts": "context", "users": "user"}
KNOWN_TOP = frozenset({"apiVersion", "kind", "preferences", "clusters", "contexts", "users", "current-context", "extensions"})  # fmt: skip
KNOWN_FIELDS = {
    "cluster": frozenset({
        "server", "tls-server-name", "insecure-skip-tls-verify", "certificate-authority",
        "certificate-authority-data", "proxy-url", "disable-compression", "extensions",
    }),
    "context": frozenset({"cluster", "user", "namespace", "extensions"}),
    "user": frozenset({
        "client-certificate", "client-certificate-data", "client-key", "client-key-data", "token",
        "tokenFile", "as", "as-uid", "as-groups", "as-user-extra", "username", "password",
        "auth-provider", "exec", "extensions",
    }),
}  # fmt: skip
NORMALISE_HINT = (
    "kubejit edits block-style YAML only; rewrite the file in block style, e.g. "
    "`kubectl config view --raw > new-config` (this drops comments), or pass --file for another file."
)


@dataclass(frozen=True)
class JitContext:
    """One kubeconfig context for one active grant: what kubectl needs, and never a credential."""

    grant_id: str
    context: str
    cluster: str
    namespace: str
    server: str
    certificate_authority_data: str | None
    broker: str
    command: str

    @property
    def user(self) -> str:
        return f"jit-{self.grant_id}"

    @property
    def cluster_entry(self) -> str:
        return f"jit-{self.cluster}"

    def entries(self) -> dict[str, dict[str, Any]]:
        cluster: dict[str, Any] = {"server": self.server}
        if self.certificate_authority_data:
            cluster["certificate-authority-data"] = self.certificate_authority_data
        exec_config = {
            "apiVersion": EXEC_API_VERSION,
            "command": self.command,
            "args": ["token", "--grant", self.grant_id, "--broker", self.broker],
            "interactiveMode": "Never",  # the plugin never prompts: it explains on stderr and exits 1
            "provideClusterInfo": False,
            "installHint": "kubejit runs this context's credential plugin: pip install kubejit",
        }
        context = {"cluster": self.cluster_entry, "user": self.user, "namespace": self.namespace}
        return {
            "clusters": {"name": self.cluster_entry, "cluster": cluster},
            "contexts": {"name": self.context, "context": context},
            "users": {"name": self.user, "user": {"exec": exec_config}},
        }


def context_name(cluster: str, namespace: str | None) -> str:
    """``jit-<cluster>-<namespace>``; ``jit-<cluster>-cluster-wide`` for a grant of a cluster-wide role."""
    return f"jit-{cluster}-{namespace or 'cluster-wide'}"


def plan_contexts(
    grants: Iterable[Mapping[str, Any]],
    clusters: Mapping[str, Mapping[str, Any]],
    *,
    broker: str,
    command: str,
) -> list[JitContext]:
    """One context per active grant, named ``jit-<cluster>-<namespace>`` (its first namespace); when two
    grants would share a name, the newer one keeps it and the older ones get ``-<grant id>`` appended."""
    newest_first = sorted(grants, key=lambda g: str(g.get("activated_at") or ""), reverse=True)
    taken: set[str] = set()
    planned = []
    for grant in newest_first:
        endpoint = clusters.get(str(grant["cluster"]))
        if endpoint is None or not endpoint.get("server"):
            raise ConfigError(
                f"the broker does not say where cluster {grant['cluster']} is (grant {grant['id']})",
                hint="Ask the broker's operator to check the cluster's kubeconfig in the broker config.",
            )
        first = str(grant["namespaces"][0]) if grant["namespaces"] else None  # none: cluster-wide
        name = context_name(str(grant["cluster"]), first)
        if name in taken:
            name = f"{name}-{grant['id']}"
        taken.add(name)
        planned.append(
            JitContext(
                grant_id=str(grant["id"]),
                context=name,
                cluster=str(grant["cluster"]),
                namespace=first or "default",
                server=str(endpoint["server"]),
                certificate_authority_data=endpoint.get("certificate_authority_data") or None,
                broker=broker,
                command=command,
            )
        )
    return planned


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One item of a section: its value, and the [start, end) character range of its lines."""

    name: str
    value: dict[str, Any]
    start: int
    end: int


@dataclass
class Kubeconfig:
    text: str
    source: str
    data: dict[str, Any]
    root: yaml.MappingNode | None
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def named(self, section: str) -> dict[str, Entry]:
        return {e.name: e for e in self.entries.get(section, [])}

    def owned_users(self) -> dict[str, str]:
        """user entry name → grant id, for the users kubejit wrote."""
        return {e.name: grant for e in self.entries["users"] if (grant := owned_grant(e.value))}

    def owned_contexts(self) -> dict[str, str]:
        """context name → grant id, for contexts that use a kubejit user."""
        users = self.owned_users()
        found = {}
        for entry in self.entries["contexts"]:
            user = _mapping(entry.value.get("context")).get("user")
            if isinstance(user, str) and user in users:
                found[entry.name] = users[user]
        return found


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else empty: a hand-edited entry may hold anything (kubectl refuses it,
    kubejit leaves it alone)."""
    return value if isinstance(value, Mapping) else {}


def _exec_args(user_entry: Mapping[str, Any]) -> list[Any]:
    args = _mapping(_mapping(user_entry.get("user")).get("exec")).get("args")
    return args if isinstance(args, list) else []


def _cluster_of(context_entry: Mapping[str, Any]) -> str | None:
    cluster = _mapping(context_entry.get("context")).get("cluster")
    return cluster if isinstance(cluster, str) else None


def owned_grant(user_entry: Mapping[str, Any]) -> str | None:
    """The grant id of a user entry kubejit wrote (``jit-<grant>`` running ``kubejit token``)."""
    name = str(user_entry.get("name", ""))
    args = _exec_args(user_entry)
    if not name.startswith("jit-") or args[:2] != ["token", "--grant"]:
        return None
    return str(args[2]) if len(args) > 2 and f"jit-{args[2]}" == name else None


def broker_of(user_entry: Mapping[str, Any]) -> str | None:
    args = _exec_args(user_entry)
    return str(args[args.index("--broker") + 1]) if "--broker" in args[:-1] else None


def parse_kubeconfig(text: str, *, source: str) -> Kubeconfig:
    """Read a kubeconfig for editing; refuses what it could not edit without changing other entries."""
    if not text.strip():
        return Kubeconfig(text, source, {}, None, {s: [] for s in SECTIONS})
    # A kubeconfig is kubectl's file, not one kubejit asks people to write: aliases stay allowed there.
    data, node = parse_yaml(text, source=source, what="kubeconfig", aliases=True)
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{source}: not a kubeconfig (the top level is not a mapping)", hint=NORMALISE_HINT)
    if node.flow_style:
        raise ConfigError(f"{source}: the kubeconfig is written in flow style (JSON?)", hint=NORMALISE_HINT)
    if data.get("kind", "Config") != "Config" or data.get("apiVersion", "v1") != "v1":
        raise ConfigError(
            f"{source}: not a kubeconfig (kind {data.get('kind')!r}, apiVersion {data.get('apiVersion')!r})",
            hint="kubejit merges into `kind: Config`, `apiVersion: v1` files; pass --file for another file.",
        )
    config = Kubeconfig(text, source, data, node)
    for section in SECTIONS:
        config.entries[section] = _section_entries(config, section)
    config.unknown = unknown_fields(config)
    return config


def _value_node(root: yaml.MappingNode | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if root is None:
        return None
    return next(((k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _section_entries(config: Kubeconfig, section: str) -> list[Entry]:
    pair = _value_node(config.root, section)
    values = config.data.get(section)
    if pair is None or values is None or values == []:
        return []
    key, node = pair
    at = f"{config.source}:{key.start_mark.line + 1}"
    if not isinstance(node, yaml.SequenceNode) or not isinstance(values, list):
        raise ConfigError(
            f"{at}: `{section}` must be a list", hint="See `kubectl config view` for the shape."
        )
    if node.flow_style:
        raise ConfigError(f"{at}: `{section}` is a flow-style list ([...])", hint=NORMALISE_HINT)
    entries = []
    for index, (item, value) in enumerate(zip(node.value, values, strict=True)):
        line = f"{config.source}:{item.start_mark.line + 1}"
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ConfigError(f"{line}: {section}[{index}] has no name", hint="Each entry needs `name:`.")
        if isinstance(item, yaml.MappingNode) and item.flow_style:
            raise ConfigError(f"{line}: {section}[{index}] is in flow style ({{...}})", hint=NORMALISE_HINT)
        start = _line_start(config.text, config.text.rfind("-", 0, item.start_mark.index))
        entries.append(Entry(value["name"], value, start, _line_end(config.text, _content_end(item))))
    return entries


def _content_end(node: yaml.Node) -> int:
    """Index just past the last character that belongs to ``node`` (block ends lie past comments)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return int(node.end_mark.index)
    if isinstance(node, yaml.MappingNode):
        if not node.value:
            return int(node.end_mark.index)
        key, value = node.value[-1]
        return max(_content_end(key), _content_end(value))
    if isinstance(node, yaml.SequenceNode) and node.value:
        return _content_end(node.value[-1])
    return int(node.end_mark.index)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, max(index, 0)) + 1


def _line_end(text: str, index: int) -> int:
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def unknown_fields(config: Kubeconfig) -> list[str]:
    """Fields kubectl ignores (a typo, a newer kubectl's field): kept as they are, and reported."""
    found = [f"{key} (top level)" for key in config.data if key not in KNOWN_TOP]
    for section in SECTIONS:
        inner = ENTRY_KEY[section]
        for entry in config.entries[section]:
            found += [f"{section}[{entry.name}].{k}" for k in entry.value if k not in ("name", inner)]
            body = entry.value.get(inner)
            if isinstance(body, dict):
                found += [
                    f"{section}[{entry.name}].{inner}.{k}" for k in body if k not in KNOWN_FIELDS[inner]
                ]
    return found


# -- merging ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeResult:
    text: str
    added: list[str]
    updated: list[str]
    removed: list[str]
    current_context: str | None


def merge(
    config: Kubeconfig,
    *,
    contexts: Iterable[JitContext] = (),
    remove_grants: Iterable[str] = (),
    use: str | None = None,
) -> MergeResult:
    """Write ``contexts`` (replacing kubejit's own entries of the same name), drop the contexts of
    ``remove_grants`` with their users (and their clusters once nothing uses them), set
    current-context to ``use``. Everything else is left byte for byte."""
    wanted = list(contexts)
    gone = set(remove_grants) - {c.grant_id for c in wanted}
    owned_contexts = config.owned_contexts()
    _refuse_foreign_names(config, wanted, owned_contexts)
    desired: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SECTIONS}
    for jit in wanted:
        for section, entry in jit.entries().items():
            desired[section][entry["name"]] = entry
    drop = _entries_to_drop(config, gone, desired, owned_contexts)
    current = config.data.get("current-context")
    if current in drop["contexts"] and use is None:
        use = ""
    edits: list[tuple[int, int, str]] = []
    for section in SECTIONS:
        edits += _section_edits(config, section, desired[section], drop[section])
    if use is not None and use != current:
        edits.append(_current_context_edit(config, use))
    text = _apply(config.text if config.root is not None else _new_document(), edits)
    before = config.named("contexts")
    _verify(config, text, desired, drop, use)
    return MergeResult(
        text=text,
        added=[c.context for c in wanted if c.context not in before],
        updated=[c.context for c in wanted if c.context in before],
        removed=sorted(drop["contexts"]),
        current_context=use if use is not None else current,
    )


def _refuse_foreign_names(config: Kubeconfig, wanted: list[JitContext], owned: Mapping[str, str]) -> None:
    """A context of the user's own that happens to have kubejit's name is theirs: never overwrite it."""
    existing = config.named("contexts")
    for jit in wanted:
        if jit.context in existing and jit.context not in owned:
            raise ConfigError(
                f"{config.source}: it already has a context named {jit.context} that kubejit did not write",
                hint=f"Rename it (`kubectl config rename-context {jit.context} NEW`), then run again.",
            )


def _entries_to_drop(
    config: Kubeconfig,
    gone: set[str],
    desired: Mapping[str, Mapping[str, Any]],
    owned_contexts: Mapping[str, str],
) -> dict[str, set[str]]:
    contexts = {name for name, grant in owned_contexts.items() if grant in gone}
    users = {name for name, grant in config.owned_users().items() if grant in gone}
    # A context of a remaining grant may have moved to a new name: its old entry goes.
    moved = {n for n, g in owned_contexts.items() if f"jit-{g}" in desired["users"]} - set(
        desired["contexts"]
    )
    contexts |= moved
    still_used = {_cluster_of(e.value) for e in config.entries["contexts"] if e.name not in contexts} | {
        c["context"]["cluster"] for c in desired["contexts"].values()
    }
    dropped_clusters = {_cluster_of(config.named("contexts")[c].value) for c in contexts}
    clusters = {c for c in dropped_clusters if c is not None and c.startswith("jit-") and c not in still_used}
    return {"clusters": clusters, "contexts": contexts, "users": users}


def _section_edits(
    config: Kubeconfig, section: str, desired: Mapping[str, dict[str, Any]], drop: set[str]
) -> list[tuple[int, int, str]]:
    entries = config.entries[section]
    indent = _indent_of(config, entries)
    edits = []
    present = set()
    for entry in entries:
        if entry.name in drop:
            edits.append((entry.start, entry.end, ""))
        elif entry.name in desired:
            present.add(entry.name)
            if entry.value != desired[entry.name]:
                edits.append((entry.start, entry.end, _render_item(desired[entry.name], indent)))
    new = "".join(_render_item(v, indent) for k, v in desired.items() if k not in present)
    if not new:
        return edits
    if entries:
        return [*edits, (entries[-1].end, entries[-1].end, new)]
    return [*edits, _new_section_edit(config, section, new)]


def _indent_of(config: Kubeconfig, entries: list[Entry]) -> int:
    if not entries:
        return 0
    line = config.text[entries[0].start :]
    return len(line) - len(line.lstrip(" "))


def _render_item(value: Mapping[str, Any], indent: int) -> str:
    text = yaml.safe_dump([dict(value)], default_flow_style=False, sort_keys=False, width=1 << 20)
    return "".join(" " * indent + line for line in text.splitlines(keepends=True))


def _new_section_edit(config: Kubeconfig, section: str, items: str) -> tuple[int, int, str]:
    """``clusters: null`` / ``clusters: []`` / no key at all → a block list."""
    pair = _value_node(config.root, section)
    if pair is None:
        end = len(config.text) if config.root is not None else len(_new_document())
        prefix = "" if end == 0 or (config.text or _new_document()).endswith("\n") else "\n"
        return end, end, f"{prefix}{section}:\n{items}"
    key, value = pair
    return key.end_mark.index, _line_end(config.text, _content_end(value)), f":\n{items}"


def _current_context_edit(config: Kubeconfig, name: str) -> tuple[int, int, str]:
    rendered = name if name else '""'
    pair = _value_node(config.root, "current-context")
    if pair is None:
        text = config.text if config.root is not None else _new_document()
        prefix = "" if not text or text.endswith("\n") else "\n"
        return len(text), len(text), f"{prefix}current-context: {rendered}\n"
    key, value = pair
    return key.end_mark.index, _line_end(config.text, _content_end(value)), f": {rendered}\n"


def _new_document() -> str:
    return "apiVersion: v1\nkind: Config\npreferences: {}\n"


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    # From the end backwards, so earlier offsets stay valid; an insertion at p goes before a
    # deletion ending at p, and insertions at one place keep their order.
    order = sorted(range(len(edits)), key=lambda i: (edits[i][0], edits[i][1], i), reverse=True)
    for i in order:
        start, end, replacement = edits[i]
        text = text[:start] + replacement + text[end:]
    return text


def _verify(
    config: Kubeconfig,
    text: str,
    desired: Mapping[str, Mapping[str, Any]],
    drop: Mapping[str, set[str]],
    use: str | None,
) -> None:
    """Parse what is about to be written; anything but the intended change is a bug, never written."""
    try:
        after = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise _merge_bug(config, f"the merged text is not YAML ({exc})") from exc
    for key, value in config.data.items():
        if key not in (*SECTIONS, "current-context") and after.get(key) != value:
            raise _merge_bug(config, f"`{key}` changed")
    for section in SECTIONS:
        kept = [e.value for e in config.entries[section] if e.name not in drop[section]]
        kept = [desired[section].get(v["name"], v) for v in kept]
        kept += [v for k, v in desired[section].items() if k not in config.named(section)]
        if (after.get(section) or []) != kept:
            raise _merge_bug(config, f"`{section}` would not be what was meant")
    expected = use if use is not None else config.data.get("current-context")
    if after.get("current-context") != expected:
        raise _merge_bug(config, "current-context would not be what was meant")


def _merge_bug(config: Kubeconfig, what: str) -> KubejitError:
    return KubejitError(
        f"{config.source}: kubejit could not merge into this file without changing other entries ({what}); "
        "nothing was written",
        hint=NORMALISE_HINT + " Please report the file's layout (without its secrets).",
    )


# -- the file ----------------------------------------------------------------------------------------


def default_path() -> str:
    """The file kubectl writes to: the first entry of $KUBECONFIG, else ~/.kube/config."""
    for part in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if part:
            return part
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def read_kubeconfig(path: str) -> Kubeconfig:
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the kubeconfig {path}: {exc}", hint="Check the file, or pass --file."
        ) from exc
    return parse_kubeconfig(text, source=path)


def write_kubeconfig(path: str, text: str) -> None:
    """Atomically (write, fsync, rename) and private (0600): a symlinked kubeconfig stays a symlink."""
    target = os.path.realpath(path)
    try:
        write_private(target, text, durable=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the kubeconfig {target}: {exc.strerror}", hint="Check permissions, or pass --file."
        ) from exc


class KubeconfigLock(FileLock):
    """Two `kubejit kubeconfig` runs at once would lose one's entries: they take turns."""

    def __init__(self, path: str) -> None:
        super().__init__(os.path.realpath(path) + ".kubejit.lock")

    def __enter__(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            super().__enter__()
        except OSError as exc:
            raise ConfigError(
                f"cannot lock the kubeconfig: {exc.strerror} ({self.path})",
                hint="Check the folder's permissions, or pass --file for a kubeconfig you can write.",
            ) from exc
