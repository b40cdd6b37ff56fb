"""The exec plugin's token cache: one small private file per (grant, broker), read on kubectl's hot path.

An entry's header is ``key value`` lines and its body the ExecCredential ``status``, serialised when
the token was fetched, so serving it is a read and a write. Imports only ``os``, ``stat`` and
``time`` (no json, no typing): ``kubejit.exec.plugin`` loads it on every kubectl call.

Cache: ``$XDG_CACHE_HOME/kubejit/tokens/<grant>.<hex(broker)>.cred`` (file 0600, folder 0700) holds a
token entry, or a tombstone once the broker said the grant ended (the token is gone, the message
stays). Never a token anywhere else. Served-markers (``<entry>.seen/<serial>.<caller>``) tell a
second call from the same kubectl process, which means the API server rejected the token.
"""

from __future__ import annotations

import os
import stat
import time

CACHE_MAGIC = "kubejit-token-cache 1"
MAX_ENTRY_BYTES = 64 * 1024
#: One call in this many (by pid) removes the served-markers of kubectl processes that have exited.
PRUNE_EVERY = 32


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
    """``kubejit.local.session.session_path()``, computed here so the cached path need not import it."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "kubejit", "session.json")


def session_stamp() -> str:
    """Identifies the login session (a new login writes a new file): tokens are only served to it."""
    try:
        st = os.stat(session_file())
    except OSError:
        return "none"
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


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


def render_entry(fields: dict[str, str]) -> str:
    head = [CACHE_MAGIC] + [
        f"{key} {value.replace(chr(10), ' ')}" for key, value in fields.items() if key != "body"
    ]
    return "\n".join(head) + "\n\n" + fields["body"]


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
