"""``raftkv completion bash|zsh|fish``: the shell completion script (click's)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from raftkv.cli.context import command


def register(cli: click.Group) -> None:
    cli.add_command(completion)


@command("completion", global_flags=False)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; load it in your shell's startup file.

    \b
    Examples:
        eval "$(raftkv completion bash)"          # in ~/.bashrc
        raftkv completion fish > ~/.config/fish/completions/raftkv.fish
    """
    from raftkv.cli.main import cli

    cls = get_completion_class(shell)
    click.echo(cls(cli, {}, "raftkv", "_RAFTKV_COMPLETE").source())
