"""``kubectl-jit``: kubejit as a kubectl plugin, so `kubectl jit request …` and `kubectl jit ls` work.

kubectl finds any ``kubectl-<name>`` executable on PATH and runs it with the remaining arguments.
This is the kubejit CLI under another name: ``ls`` is short for ``grants``; everything else (request,
kubeconfig, revoke, completion, …) is passed through unchanged. ``kubectl_complete-jit`` is what
kubectl (1.26+) runs to complete ``kubectl jit …`` on the command line.
"""

from __future__ import annotations

import sys

ALIASES = {"ls": "grants"}
#: Cobra's ShellCompDirectiveNoFileComp: offer only these words, not file names.
NO_FILE_COMPLETION = ":4"


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


def complete() -> None:
    """``kubectl_complete-jit WORD… PARTIAL``: kubectl passes the words after ``kubectl jit``, the last
    one being the word to complete (empty for a new word), and reads one completion per line. The
    answers come from the CLI's own completion (the ``_KUBEJIT_COMPLETE`` protocol), so they match
    `kubejit` completion exactly."""
    import contextlib
    import io
    import os
    import shlex

    from kubejit.cli import app as kubejit_app

    *words, partial = sys.argv[1:] or [""]
    args = plugin_argv(["kubectl-jit", *words])[1:]
    line = ["kubejit", *args, *([partial] if partial else [])]
    os.environ.update(
        _KUBEJIT_COMPLETE="bash_complete", COMP_WORDS=shlex.join(line), COMP_CWORD=str(len(args) + 1)
    )
    answer = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # click writes the answer as bytes
    with contextlib.redirect_stdout(answer), contextlib.suppress(SystemExit):
        kubejit_app.app.main(prog_name="kubejit")
    answer.flush()
    written = answer.buffer.getvalue().decode()
    choices = [choice for choice in written.splitlines() if choice]
    if not words and "ls".startswith(partial):
        choices.append("ls")
    sys.stdout.write("".join(f"{choice}\n" for choice in choices) + NO_FILE_COMPLETION + "\n")


if __name__ == "__main__":  # the krew shim runs `python3 -m kubejit.cli.kubectl_plugin`
    main()
