"""kubectl's exec credential plugin, ``kubejit token --grant ID --broker URL``: the cached path.

kubectl runs it on every invocation, often dozens at once (scripts, k9s, Lens), so a warm call must
cost little more than starting Python. This module and ``kubejit.exec.cache`` (the cache entries)
therefore import only ``os``, ``stat``, ``sys`` and ``time``: no json (it pulls in ``re``), no typing,
not even ``kubejit.errors``. Everything else (the lock, the broker, the messages) is in
``kubejit.exec.refresh``, imported only on a miss.

Rejection: client-go runs the plugin once per process, and again when the API server answers 401.
So a second call from the same kubectl process for the same token means "rejected" (revoked, say):
the refresh path asks the broker instead of serving the dead token again. Calls are told apart by a
marker file per (token, calling process); only client-go callers, which set ``KUBERNETES_EXEC_INFO``,
are checked this way.
"""

from __future__ import annotations

import os
import sys

from kubejit.exec.cache import CachePaths, cache_root, is_fresh, mark_served, read_entry, session_stamp

TYPE_CHECKING = False  # `typing` costs ~10 ms of start-up; mypy still reads the block below.
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


EXEC_API_V1 = "client.authentication.k8s.io/v1"
EXEC_API_VERSIONS = (EXEC_API_V1, "client.authentication.k8s.io/v1beta1")
#: What client-go sends (plus a newline), byte for byte: recognising it spares a json import per call.
KNOWN_EXEC_INFO = {
    f'{{"kind":"ExecCredential","apiVersion":"{version}","spec":{{"interactive":{flag}}}}}': version
    for version in EXEC_API_VERSIONS
    for flag in ("false", "true")
}
USAGE = "usage: kubejit token --grant GRANT_ID [--broker URL]"
_GRANT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class PluginArgs:
    __slots__ = ("broker", "grant")

    def __init__(self, grant: str, broker: str | None) -> None:
        self.grant = grant
        self.broker = broker


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
        sys.stderr.write(tombstone_text(fields["body"]))  # an older version's entry may hold raw text
        return 1
    if fields is not None and is_fresh(fields) and fields.get("session") == session_stamp():
        if not from_client_go or mark_served(paths, fields["serial"]):
            sys.stdout.write(credential(api_version, fields["body"]))
            return 0
        return _refresh(args, api_version, from_client_go=True, rejected=fields["serial"])
    return _refresh(args, api_version, from_client_go=from_client_go, rejected=None)


def _refresh(args: PluginArgs, api_version: str, *, from_client_go: bool, rejected: str | None) -> int:
    from kubejit.exec.refresh import refresh

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


def credential(api_version: str, status: str) -> str:
    return f'{{"apiVersion":"{api_version}","kind":"ExecCredential","status":{status}}}\n'


#: C0, DEL and C1 control characters, each replaced by "?": messages hold the broker's text (an end
#: reason, a problem detail) and kubectl copies the plugin's stderr to the terminal as it is.
_CONTROLS = {code: "?" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS_BUT_NEWLINE = {code: text for code, text in _CONTROLS.items() if code != 0x0A}


def said(message: str, hint: str | None) -> str:
    """How the plugin words a failure: kubectl prints the plugin's stderr above its own error."""
    message = message.translate(_CONTROLS)
    return f"kubejit: {message}\n" + (f"kubejit: {hint.translate(_CONTROLS)}\n" if hint else "")


def tombstone_text(body: str) -> str:
    """A cached ``ended`` message as it goes to stderr: lines kept, any other control character not."""
    return body.translate(_CONTROLS_BUT_NEWLINE)


def _say(message: str, hint: str | None) -> None:
    sys.stderr.write(said(message, hint))


def _bad_input(message: str) -> Any:
    from kubejit.errors import InvalidInput

    raise InvalidInput(message, hint=USAGE)
