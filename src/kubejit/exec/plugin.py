"""kubectl's exec credential plugin, ``kubejit token --grant ID --broker URL``: the cached path.

kubectl runs it on every invocation, often dozens at once (scripts, k9s, Lens), so a warm call must
cost little more than starting Python. This module therefore imports only ``os``, ``stat``, ``sys``
and ``time``: no json (it pulls in ``re``), no typing, not even ``kubejit.errors``. A cache entry is
one small file whose header is ``key value`` lines and whose body is the ExecCredential ``status``,
serialised when the token was fetched; serving it is a read and a write. Everything else (the lock,
the broker, the messages) is in ``exec_refresh``, imported only on a miss.

Cache: ``$XDG_CACHE_HOME/kubejit/tokens/<grant>.<hex(broker)>.cred`` (file 0600, folder 0700) holds a
token entry, or a tombstone once the broker said the grant ended (the token is gone, the message
stays). Never a token anywhere else.

Rejection: client-go runs the plugin once per process, and again when the API server answers 401.
So a second call from the same kubectl process for the same token means "rejected" (revoked, say):
the refresh path asks the broker instead of serving the dead token again. Calls are told apart by a
marker file per (token, calling process); only client-go callers, which set ``KUBERNETES_EXEC_INFO``,
are checked this way.
"""

from __future__ import annotations

import os
import stat
import sys
import time

TYPE_CHECKING = False  # `typing` costs ~10 ms of start-up; mypy still reads the block below.
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


CACHE_MAGIC = "kubejit-token-cache 1"
EXEC_API_V1 = "client.authentication.k8s.io/v1"
EXEC_API_VERSIONS = (EXEC_API_V1, "client.authentication.k8s.io/v1beta1")
#: What client-go sends (plus a newline), byte for byte: recognising it spares a json import per call.
KNOWN_EXEC_INFO = {
    f'{{"kind":"ExecCredential","apiVersion":"{version}","spec":{{"interactive":{flag}}}}}': version
    for version in EXEC_API_VERSIONS
    for flag in ("false", "true")
}
MAX_ENTRY_BYTES = 64 * 1024
#: One call in this many (by pid) removes the served-markers of kubectl processes that have exited.
PRUNE_EVERY = 32
USAGE = "usage: kubejit token --grant GRANT_ID [--broker URL]"
_GRANT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class PluginArgs:
    __slots__ = ("broker", "grant")

    def __init__(self, grant: str, broker: str | None) -> None:
        self.grant = grant
        self.broker = broker


class CachePaths:
    """Where one (grant, broker) pair keeps its entry, lock and served-markers."""

    __slots__ = ("down", "entry", "grant", "lock", "root", "seen")

    def __init__(self, grant: str, broker: str, *, root: str | None = None) -> None:
        self.grant = grant
        self.root = root or cache_root()
        key = broker.encode().hex()
        if len(key) > 160:  # a file name has 255 bytes; rare, so the slower hashlib is fine here
            import hashlib

            key = hashlib.sha256(broker.encode()).hexdigest()
        base = os.path.join(self.root, f"{grant}.{key}")
        self.entry = base + ".cred"
        self.lock = base + ".lock"
        self.seen = base + ".seen"
        self.down = os.path.join(self.root, f"broker.{key}.down")


def cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kubejit", "tokens")


def session_file() -> str:
    """``kubejit.cli.session.session_path()``, computed here so the cached path need not import it."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "kubejit", "session.json")


def session_stamp() -> str:
    """Identifies the login session (a new login writes a new file): tokens are only served to it."""
    try:
        st = os.stat(session_file())
    except OSError:
        return "none"
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


# -- the cached path ---------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    """Entry point of ``kubejit token``; returns the exit code (0, or 1 with a message on stderr)."""
    try:
        return _serve(argv)
    except OSError as exc:  # the cache folder is read-only, full, or not what it should be
        if os.environ.get("KUBEJIT_DEBUG"):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        _say(
            f"cannot use the token cache in {cache_root()}: {exc.strerror or exc}{where}",
            "Make it writable by you, or point XDG_CACHE_HOME elsewhere; KUBEJIT_DEBUG=1 shows details.",
        )
        return 1
    except Exception as exc:
        from kubejit.errors import KubejitError

        if not isinstance(exc, KubejitError) or os.environ.get("KUBEJIT_DEBUG"):
            raise
        _say(exc.message, exc.hint)
        return 2 if exc.code == "invalid-input" else 1


def _serve(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args is None:
        sys.stdout.write(USAGE + "\n")
        return 0
    api_version, from_client_go = exec_api_version(os.environ.get("KUBERNETES_EXEC_INFO"))
    if args.broker is None:
        return _refresh(args, api_version, from_client_go=from_client_go, rejected=None)
    paths = CachePaths(args.grant, args.broker)
    fields = read_entry(paths.entry)[0]
    if fields is not None and fields["kind"] == "ended":
        sys.stderr.write(fields["body"])
        return 1
    if fields is not None and is_fresh(fields) and fields.get("session") == session_stamp():
        if not from_client_go or mark_served(paths, fields["serial"]):
            sys.stdout.write(credential(api_version, fields["body"]))
            return 0
        return _refresh(args, api_version, from_client_go=True, rejected=fields["serial"])
    return _refresh(args, api_version, from_client_go=from_client_go, rejected=None)


def _refresh(args: PluginArgs, api_version: str, *, from_client_go: bool, rejected: str | None) -> int:
    from kubejit.exec_refresh import refresh

    return refresh(args, api_version, from_client_go=from_client_go, rejected=rejected)


def parse_args(argv: Sequence[str]) -> PluginArgs | None:
    """``--grant ID [--broker URL]`` (also ``--opt=value``); None means --help. No argparse: it is slow."""
    values: dict[str, str] = {}
    items = list(argv)
    while items:
        item = items.pop(0)
        if item in ("-h", "--help"):
            return None
        name, eq, value = item.partition("=")
        if name not in ("--grant", "--broker"):
            _bad_input(f"unknown argument {item!r}")
        if not eq:
            if not items:
                _bad_input(f"{name} needs a value")
            value = items.pop(0)
        values[name] = value
    grant = values.get("--grant") or _bad_input("--grant is required")
    if not valid_grant_id(grant):
        _bad_input(f"{grant!r} is not a grant id (lower-case letters, digits and '-')")
    broker = values.get("--broker") or os.environ.get("KUBEJIT_BROKER") or None
    if broker is not None:
        broker = broker.rstrip("/")
        if not broker.startswith(("http://", "https://")) or any(c.isspace() for c in broker):
            _bad_input(f"--broker {broker!r} is not an http(s) URL")
    return PluginArgs(grant, broker)


def valid_grant_id(value: str) -> bool:
    return (
        0 < len(value) <= 63
        and set(value) <= _GRANT_ID_CHARS
        and not value.startswith("-")
        and not value.endswith("-")
    )


def exec_api_version(info: str | None) -> tuple[str, bool]:
    """The apiVersion to answer with, and whether a client-go exec authenticator is calling."""
    if not info:
        return EXEC_API_V1, False
    known = KNOWN_EXEC_INFO.get(info.rstrip("\n"))  # client-go ends it with a newline
    if known is not None:
        return known, True
    return parse_exec_info(info), True


def parse_exec_info(info: str) -> str:
    """Validate an unusual KUBERNETES_EXEC_INFO in full (the slow way) and return its apiVersion."""
    import json

    try:
        data = json.loads(info)
    except ValueError as exc:
        _bad_input(f"KUBERNETES_EXEC_INFO is not valid JSON ({exc})")
    if not isinstance(data, dict) or data.get("kind") != "ExecCredential":
        _bad_input("KUBERNETES_EXEC_INFO is not an ExecCredential")
    version = data.get("apiVersion")
    if version not in EXEC_API_VERSIONS:
        _bad_input(f"KUBERNETES_EXEC_INFO has apiVersion {version!r}; kubejit speaks {EXEC_API_V1}")
    spec = data.get("spec", {})
    if not isinstance(spec, dict) or not isinstance(spec.get("interactive", False), bool):
        _bad_input("KUBERNETES_EXEC_INFO has a malformed spec")
    return str(version)


def read_entry(path: str) -> tuple[dict[str, str] | None, str | None]:
    """(fields, None), (None, None) when there is no entry, or (None, why) when it is unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot be opened ({exc.strerror})"
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o7077 or not stat.S_ISREG(st.st_mode):
            return None, "is not a private file of yours (mode 0600)"
        data = os.read(fd, MAX_ENTRY_BYTES + 1)
    finally:
        os.close(fd)
    try:
        fields = parse_entry(data.decode())
    except UnicodeDecodeError:
        fields = None
    return (fields, None) if fields is not None else (None, "is corrupt")


def parse_entry(text: str) -> dict[str, str] | None:
    """Header lines ``key value``, a blank line, then the body; None unless well-formed."""
    head, blank, body = text.partition("\n\n")
    lines = head.split("\n")
    if not blank or lines[0] != CACHE_MAGIC or len(text) > MAX_ENTRY_BYTES:
        return None
    fields = {"body": body}
    for line in lines[1:]:
        key, space, value = line.partition(" ")
        if not space:
            return None
        fields[key] = value
    kind = fields.get("kind")
    if kind == "ended":
        return fields if body else None
    needed = ("refresh_at", "not_after", "minted_at", "serial", "session", "user")
    if kind != "token" or not body.startswith("{") or any(k not in fields for k in needed):
        return None
    try:
        float(fields["refresh_at"]), float(fields["not_after"]), float(fields["minted_at"])
    except ValueError:
        return None
    return fields


def is_fresh(fields: dict[str, str]) -> bool:
    return time.time() < float(fields["refresh_at"])


def mark_served(paths: CachePaths, serial: str) -> bool:
    """True the first time the calling process gets this token; False when it asks again (a 401)."""
    marker = os.path.join(paths.seen, f"{serial}.{caller_id()}")
    for _ in range(2):
        try:
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            if os.getpid() % PRUNE_EVERY == 0:  # about one call in PRUNE_EVERY tidies up
                forget_gone_callers(paths)
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:
            try:
                os.mkdir(paths.seen, 0o700)
            except FileExistsError:
                pass
            except OSError:
                return True
        except OSError:
            return True  # a read-only cache must not break kubectl; only rejection detection is lost
    return True


def forget_gone_callers(paths: CachePaths) -> None:
    """Drop the markers of kubectl processes that have exited, so a token used by thousands of kubectl
    runs does not leave thousands of files. Linux only (it needs /proc); elsewhere they go at refresh."""
    try:
        names = os.listdir(paths.seen)
    except OSError:
        return
    if not os.path.isdir("/proc/self"):
        return
    for name in names:
        caller = name.partition(".")[2]
        pid, _, started = caller.partition("-")
        if pid.isdigit() and process_started(int(pid)) != started:
            remove(os.path.join(paths.seen, name))


def process_started(pid: int) -> str | None:
    """The start time of a running process (field 22 of /proc/PID/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as proc:
            return proc.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def caller_id() -> str:
    """The parent process (kubectl), with its start time on Linux so a reused pid is not mistaken."""
    ppid = os.getppid()
    return f"{ppid}-{process_started(ppid) or '0'}"


def credential(api_version: str, status: str) -> str:
    return f'{{"apiVersion":"{api_version}","kind":"ExecCredential","status":{status}}}\n'


def said(message: str, hint: str | None) -> str:
    """How the plugin words a failure: kubectl prints the plugin's stderr above its own error."""
    return f"kubejit: {message}\n" + (f"kubejit: {hint}\n" if hint else "")


def _say(message: str, hint: str | None) -> None:
    sys.stderr.write(said(message, hint))


def _bad_input(message: str) -> Any:
    from kubejit.errors import InvalidInput

    raise InvalidInput(message, hint=USAGE)


# -- files ---------------------------------------------------------------------------------------


def render_entry(fields: dict[str, str]) -> str:
    head = [CACHE_MAGIC] + [
        f"{key} {value.replace(chr(10), ' ')}" for key, value in fields.items() if key != "body"
    ]
    return "\n".join(head) + "\n\n" + fields["body"]


def write_private(path: str, text: str) -> None:
    """Mode 0600, write-then-rename: a reader sees the old file or the new one, never half of one; the
    temporary file is per process, so concurrent writers (parallel kubectl calls) never collide."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def remove(path: str) -> None:
    try:  # noqa: SIM105 - contextlib would cost start-up time on the cached path
        os.unlink(path)
    except FileNotFoundError:
        pass


def forget_markers(paths: CachePaths, *, keep: str | None) -> None:
    try:
        names = os.listdir(paths.seen)
    except OSError:
        return
    for name in names:
        if keep is None or not name.startswith(keep + "."):
            remove(os.path.join(paths.seen, name))


def forget_tokens(root: str | None = None) -> int:
    """Drop every cached token and tombstone (``kubejit logout``); returns how many entries went."""
    import shutil

    folder = root or cache_root()
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    dropped = 0
    for name in names:
        path = os.path.join(folder, name)
        if name.endswith(".seen"):
            shutil.rmtree(path, ignore_errors=True)
        elif name.endswith((".cred", ".down", ".tmp")):
            dropped += name.endswith(".cred")
            remove(path)
    return dropped
