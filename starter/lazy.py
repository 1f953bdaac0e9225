"""Sub-commands imported only when they run.

Each command group pulls in its own part of the code base (definitions, workflows, the CRM
client): imported together they cost about a second of start-up that `revops --help`,
`revops contacts show` and every script calling the CLI would pay for nothing. A lazy group
lists its sub-commands from a table (name, where it lives, one line of help) and imports one
only when it is invoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any, NamedTuple

import typer
from typer._click import Command, Context  # Typer's own copy of click
from typer.core import TyperCommand, TyperGroup

__all__ = ["Lazy", "lazy_group", "subcommands"]


class Lazy(NamedTuple):
    """Where a sub-command lives (``module:attribute``, a Typer app or a command function)
    and the one line ``--help`` shows for it (a test keeps it equal to the real one)."""

    target: str
    help: str


class _Listed(TyperCommand):
    """A lazy sub-command as ``--help`` lists it; invoking it loads the real one."""


def _load(name: str, target: str) -> Command:
    module, _, attribute = target.partition(":")
    found: Any = getattr(import_module(module), attribute)
    if isinstance(found, typer.Typer):
        command: Command = typer.main.get_group(found)  # a group even with one command
    else:
        single = typer.Typer()
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    return command


def lazy_group(entries: Mapping[str, Lazy]) -> type[TyperGroup]:
    """A group class (``typer.Typer(cls=...)``) that adds ``entries`` as lazy sub-commands."""

    class LazyGroup(TyperGroup):
        def list_commands(self, ctx: Context) -> list[str]:
            return [*super().list_commands(ctx), *(n for n in entries if n not in self.commands)]

        def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
            found = super().get_command(ctx, cmd_name)
            if found is None and cmd_name in entries:
                return _Listed(cmd_name, help=entries[cmd_name].help)
            return found

        def resolve_command(
            self, ctx: Context, args: list[str]
        ) -> tuple[str | None, Command | None, list[str]]:
            name, command, rest = super().resolve_command(ctx, args)
            if isinstance(command, _Listed) and name is not None:
                command = _load(name, entries[name].target)
                self.add_command(command, name)
            return name, command, rest

    return LazyGroup


def subcommands(group: TyperGroup) -> dict[str, Command]:
    """Every sub-command of ``group``, lazy ones loaded (for tests and documentation)."""
    context = Context(group)
    found: dict[str, Command] = {}
    for name in group.list_commands(context):
        command = group.resolve_command(context, [name])[1]
        if command is not None:
            found[name] = command
    return found
