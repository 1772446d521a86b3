"""`voicefleet audit`: the session audit trail (an admin key): each read or stop by an admin of a
session another key started, newest first (`GET /audit/sessions`)."""

from __future__ import annotations

import click

from voicefleet.api import call, path
from voicefleet.options import common_options, print_json, wants_json
from voicefleet.tables import moment, table


@click.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Lines at most.")
@click.option("--runtime", is_flag=True, help="The changes of capacity and keys instead (`GET /audit/runtime`).")
@common_options
def audit(limit: int, runtime: bool) -> None:
    """Who read or stopped which session (or campaign) not their own, when: `WHEN`, `BY` (the admin key's
    id, never the key), `ACTION`, `SESSION` (a campaign's id for a `campaign.…` action), `REGION`. With
    --runtime: who changed which capacity value or key, `OLD` → `NEW` (`-`: the setting applies). Needs
    VOICEFLEET_ADMIN_KEY."""
    body = call("GET", path("audit", "runtime" if runtime else "sessions"), params={"limit": limit})
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    if runtime:
        click.echo(table(["WHEN", "BY", "ACTION", "NAME", "OLD", "NEW", "SECRET ID"],
                         [[moment(line.get("at")), str(line.get("by") or "-"), str(line.get("action") or "-"),
                           str(line.get("name") or "-"), _value(line.get("old")), _value(line.get("new")),
                           str(line.get("secret_id") or "-")] for line in body.get("lines", [])]))
        return
    click.echo(table(["WHEN", "BY", "ACTION", "SESSION", "REGION"],
                     [[moment(line.get("at")), str(line.get("by") or "-"), str(line.get("action") or "-"),
                       str(line.get("session_id") or line.get("campaign_id") or "-"), str(line.get("region") or "-")]
                      for line in body.get("lines", [])]))


def _value(value: object) -> str:
    return "-" if value is None else str(value)
