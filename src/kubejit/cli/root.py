"""The ``kubejit`` root command: every command known by name, its module imported when it is asked for.

`kubejit whoami` imports click and ``kubejit.cli.commands.auth``, not audit, scan or dev-cluster and
their libraries; ``--help`` and shell completion import them all. Shell completion is click's own,
with a bash format of one word per line (what ``kubectl_complete-jit`` reads too).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from kubejit.cli.declare import Group, declared

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_KUBEJIT_COMPLETE"


class LazyGroup(Group):
    """The root: ``modules`` maps each command name to its module; a module is imported (and its
    commands added) when one of its names is first looked up."""

    def __init__(self, *, modules: dict[str, str], **settings: object) -> None:
        super().__init__(**settings)  # type: ignore[arg-type]
        self.modules = modules

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        """Shell completion speaks click's protocol (``bash_complete``); ``complete_bash``, what bash
        scripts installed by earlier (Typer-based) kubejit versions ask, means the same."""
        asked = os.environ.get(COMPLETE_VAR)
        if asked:
            if asked.startswith("complete_"):
                os.environ[COMPLETE_VAR] = f"{asked.removeprefix('complete_')}_complete"
            use_word_per_line_bash()
        extra.setdefault("complete_var", COMPLETE_VAR)
        return super().main(args, prog_name, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.modules)  # the names only: nothing is imported to list them

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.modules:
            module = f"kubejit.cli.commands.{self.modules[cmd_name]}"
            loaded = importlib.import_module(module)
            found = getattr(loaded, "app", None)
            if isinstance(found, click.Group) and found.name == cmd_name:
                self.add_command(found)  # a command group (`kubejit policy ...`)
            else:
                for command in declared(module).values():
                    self.add_command(command)
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as exc:  # suggest from every name (not only those imported), closest first
            from difflib import get_close_matches

            name = exc.command_name
            close = ", ".join(repr(match) for match in get_close_matches(name, self.modules))
            message = f"No such command {name!r}." + (f" Did you mean {close}?" if close else "")
            raise click.NoSuchCommand(name, message=message, ctx=ctx) from None


def _show_version(ctx: click.Context, _: click.Parameter, wanted: bool) -> None:
    if wanted and not ctx.resilient_parsing:
        from kubejit.cli.app import version_line

        click.echo(version_line())
        ctx.exit()


def _completion_script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    use_word_per_line_bash()
    found = get_completion_class(shell)
    if found is None:
        raise click.BadParameter(f"no completion for {shell!r}: choose one of {', '.join(SHELLS)}")
    return found(click.get_current_context().find_root().command, {}, "kubejit", COMPLETE_VAR).source()


def _shell(given: str) -> str:
    shell = given or Path(os.environ.get("SHELL", "")).name
    if shell not in SHELLS:
        raise click.BadParameter(
            f"cannot tell the shell{f' {shell!r}' if shell else ''}: name one of {', '.join(SHELLS)}",
            param_hint="'--install-completion' / '--show-completion'",
        )
    return shell


def _show_completion(ctx: click.Context, _: click.Parameter, shell: str | None) -> None:
    if shell is not None and not ctx.resilient_parsing:
        click.echo(_completion_script(_shell(shell)))
        ctx.exit()


#: Where each shell reads completion from, and the start-up file line that loads it (bash and zsh).
_INSTALL = {
    "bash": (".bash_completions/kubejit.sh", ".bashrc"),
    "zsh": (".zfunc/kubejit.zsh", ".zshrc"),
    "fish": (".config/fish/completions/kubejit.fish", None),
}


def _install_completion(ctx: click.Context, _: click.Parameter, shell: str | None) -> None:
    if shell is None or ctx.resilient_parsing:
        return
    shell = _shell(shell)
    home = Path.home()
    script_at, rc_name = _INSTALL[shell]
    script = home / script_at
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(_completion_script(shell) + "\n")
    if rc_name is not None:
        rc = home / rc_name
        line = f"source {script}"
        if line not in (rc.read_text() if rc.exists() else ""):
            with rc.open("a") as out:
                out.write(f"\n{line}\n")
    click.echo(f"{shell} completion installed in {script}; it works in new shells.")
    ctx.exit()


def use_word_per_line_bash() -> None:
    """bash completion answers one word per line (click's own format prefixes each with its type)."""
    from click.shell_completion import BashComplete, CompletionItem, add_completion_class

    class WordPerLineBash(BashComplete):
        source_template = """\
%(complete_func)s() {
    local IFS=$'\\n'
    COMPREPLY=( $(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \\
        %(complete_var)s=bash_complete $1) )
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s
"""

        def format_completion(self, item: CompletionItem) -> str:
            return str(item.value)

    add_completion_class(WordPerLineBash, "bash")


def build(modules: dict[str, str]) -> LazyGroup:
    completion = {
        "is_eager": True,
        "expose_value": False,
        "is_flag": False,
        "flag_value": "",
        "metavar": "[bash|zsh|fish]",
    }
    return LazyGroup(
        name="kubejit",
        modules=modules,
        help="Just-in-time, short-lived, audited access to Kubernetes: request, approve, kubectl.",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
        params=[
            click.Option(
                ["--version", "-V"],
                is_flag=True,
                is_eager=True,
                expose_value=False,
                callback=_show_version,
                help="Print the version and exit.",
            ),
            click.Option(
                ["--install-completion"],
                callback=_install_completion,
                help="Install completion for this shell (default: $SHELL's).",
                **completion,  # type: ignore[arg-type]
            ),
            click.Option(
                ["--show-completion"],
                callback=_show_completion,
                help="Print the completion script, to install it by hand.",
                **completion,  # type: ignore[arg-type]
            ),
        ],
    )
