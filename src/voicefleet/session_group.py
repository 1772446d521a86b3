"""`voicefleet session ID` (as `session show ID`) and `voicefleet session stop ID`: one session, read or
stopped, with the admin's key when VOICEFLEET_ADMIN_KEY is set (the dispatcher writes each on its audit
trail: `GET /audit/sessions`), else the client's."""

from __future__ import annotations

import difflib
import re

import click

from voicefleet.api import path
from voicefleet.options import common_options
from voicefleet.sessions import session_api, show

SESSION_ID = re.compile(r"^[0-9a-f]{24}$")  # dispatcher/sessions/ids.py: every id a start makes


class ShowByDefault(click.Group):
    """A group whose first word, when it names no subcommand, is a session id to show; a word that
    is no session id but near a subcommand's name (`sotp`) is a mistyped subcommand, said so."""

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            near = difflib.get_close_matches(args[0], list(self.commands), n=1, cutoff=0.5)
            if near and not SESSION_ID.fullmatch(args[0]):
                ctx.fail(f"no such command {args[0]!r}: did you mean {near[0]!r}? "
                         f"(`voicefleet session {near[0]} {' '.join(args[1:]) or 'ID'}`)")
            return "show", show, args
        return super().resolve_command(ctx, args)


@click.group(cls=ShowByDefault)
@common_options
def session() -> None:
    """One session: `voicefleet session ID` shows it, `voicefleet session stop ID` stops it."""


@session.command("stop")
@click.argument("session_id", metavar="ID")
@common_options
def stop(session_id: str) -> None:
    """Stop a session's bot and end its room (DELETE /sessions/ID): idempotent, a second stop is harmless."""
    with session_api() as api:
        status = api.send("DELETE", path("sessions", session_id))
    if status == 202:
        click.echo(f"{session_id}: stopping (its machine is still going down; `voicefleet session {session_id}` "
                   "shows when it has ended)")
    else:
        click.echo(f"{session_id}: stopped (or it had already ended)")


session.add_command(show)
