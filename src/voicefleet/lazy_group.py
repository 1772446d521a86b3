"""A click group whose heavier commands are imported only when one of them runs: `voicefleet --help`
lists them from their one-line help given here, without importing their modules (`loadtest` brings
asyncio and the callers' planning with it)."""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    def __init__(self, *args: object, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: object) -> None:
        """`lazy`: each command's name → ("module:attribute", its one-line help for the listing)."""
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            where, _ = self.lazy[cmd_name]
            module, _, attribute = where.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{where} is no click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = [name for name in self.list_commands(ctx) if name in self.lazy or not self.commands[name].hidden]
        limit = formatter.width - 6 - max((len(name) for name in names), default=0)  # as click.Group's own
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands else self.lazy[name][1])
                for name in names]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
