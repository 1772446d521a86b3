"""`voicefleet audit`: the session audit trail (an admin key): each read or stop by an admin of a
session another key started, newest first (`GET /audit/sessions`)."""

from __future__ import annotations

import click

from cli.api import call, path
from cli.options import common_options, print_json, wants_json
from cli.tables import moment, table


@click.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Lines at most.")
@common_options
def audit(limit: int) -> None:
    """Who read or stopped which session not their own, when: `WHEN`, `BY` (the admin key's id, never
    the key), `ACTION`, `SESSION`, `REGION`. Needs VOICEFLEET_ADMIN_KEY."""
    body = call("GET", path("audit", "sessions"), params={"limit": limit})
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    click.echo(table(["WHEN", "BY", "ACTION", "SESSION", "REGION"],
                     [[moment(line.get("at")), str(line.get("by") or "-"), str(line.get("action") or "-"),
                       str(line.get("session_id") or "-"), str(line.get("region") or "-")]
                      for line in body.get("lines", [])]))
