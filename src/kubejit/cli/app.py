"""The ``kubejit`` entry point: builds the click app and prints KubejitError without a traceback.

Importing this module must stay cheap: kubectl runs `kubejit token` (its exec credential plugin) on
every call, and ``main`` hands it to ``kubejit.exec.plugin`` before click or Rich load.
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # `typing` alone costs ~10 ms of start-up
if TYPE_CHECKING:
    from kubejit.cli.root import LazyGroup
    from kubejit.errors import KubejitError

app: LazyGroup  # built by _build() on first use (see __getattr__)


#: Each command and the module under kubejit.cli.commands that declares it, in the order `kubejit
#: --help` lists them. A command's module is imported when the command is asked for (so `kubejit
#: whoami` loads auth.py, not audit, scan or dev-cluster and their dependencies). A module declares
#: its commands with ``kubejit.cli.declare.command``; a command group is the module's ``app``.
COMMANDS = {
    "up": "up",
    **dict.fromkeys(("login", "logout", "whoami"), "auth"),
    **dict.fromkeys(("request", "requests", "approve", "deny", "grants", "revoke", "extend"), "grants"),
    "open": "open_page",
    **dict.fromkeys(("reviews", "review"), "reviews"),
    **dict.fromkeys(("kubeconfig", "token"), "kubeconfig"),
    "why": "why",
    "users": "users",
    **dict.fromkeys(("lock", "unlock", "locks"), "locks"),
    "serve": "serve",
    "migrate": "migrate",
    **dict.fromkeys(("cluster-setup", "rotate-jwt-key"), "cluster_setup"),
    **dict.fromkeys(("scan", "who-can"), "scan"),
    "policy": "policy",
    "audit": "audit",
    "ci": "ci",
    "dev-cluster": "dev_cluster",
}


def _build() -> LazyGroup:
    from kubejit.cli.root import build

    global app
    app = build(COMMANDS)
    return app


def __getattr__(name: str) -> object:
    """``kubejit.cli.app.app`` keeps working for importers (PEP 562), built when first asked for."""
    if name == "app":
        return _build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def version_line() -> str:
    from kubejit import __version__

    return f"kubejit {__version__}"


def print_error(exc: KubejitError) -> None:
    """The error and its hint on stderr, as plain text (no Rich: an error need not pay its start-up)."""
    from kubejit.cli.render import printable, styled
    from kubejit.errors import RequestDenied

    # Message and hint may be the broker's problem detail: printed literally, as all server text.
    rule = f" (policy rule: {exc.rule})" if isinstance(exc, RequestDenied) and exc.rule else ""
    lines = [f"{styled('Error:', '1;31', sys.stderr)} {printable(exc.message + rule)}"]
    if exc.hint:
        lines.append(f"{styled('Hint:', '1', sys.stderr)} {printable(exc.hint)}")
    sys.stderr.write("".join(f"{line}\n" for line in lines))


def main(prog_name: str | None = None) -> None:
    """``prog_name``: how usage lines name the command (``kubectl jit`` when run as a kubectl plugin)."""
    # Start-up makes ~15,000 objects that live until exit, and the cyclic collector would walk them
    # again and again while they are made: it is off until the command itself runs (declare.Command
    # turns it on). At exit the interpreter's last collections would walk them all once more (~15 ms
    # of a 130 ms command): frozen, they are skipped. Exit stays an ordinary one (atexit handlers run,
    # files and streams are flushed and closed).
    gc.disable()
    try:
        _run(prog_name)
    finally:
        gc.freeze()


def _run(prog_name: str | None) -> None:
    if sys.argv[1:2] == ["token"]:  # kubectl's exec plugin: stdlib only when its cache is warm
        from kubejit.exec.plugin import main as token

        sys.exit(token(sys.argv[2:]))
    if sys.argv[1:] in (["--version"], ["-V"]):  # answered before click loads
        sys.stdout.write(version_line() + "\n")
        sys.exit(0)
    from kubejit.errors import KubejitError

    _build()
    try:
        app.main(prog_name=prog_name)
    except KubejitError as exc:
        if os.environ.get("KUBEJIT_DEBUG"):
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
