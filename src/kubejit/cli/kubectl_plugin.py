"""``kubectl-jit``: kubejit as a kubectl plugin, so `kubectl jit request …` and `kubectl jit ls` work.

kubectl finds any ``kubectl-<name>`` executable on PATH and runs it with the remaining arguments.
This is the kubejit CLI under another name: ``ls`` is short for ``grants``; everything else (request,
kubeconfig, revoke, completion, …) is passed through unchanged.
"""

from __future__ import annotations

import sys

ALIASES = {"ls": "grants"}


def plugin_argv(argv: list[str]) -> list[str]:
    """kubectl's argv for the plugin → kubejit's argv (program name shown in help and usage)."""
    args = argv[1:]
    if args and args[0] in ALIASES:
        args = [ALIASES[args[0]], *args[1:]]
    return ["kubectl jit", *args]


def main() -> None:
    sys.argv = plugin_argv(sys.argv)
    from kubejit.cli.app import main as kubejit_main

    kubejit_main(prog_name="kubectl jit")


if __name__ == "__main__":  # the krew shim runs `python3 -m kubejit.cli.kubectl_plugin`
    main()
