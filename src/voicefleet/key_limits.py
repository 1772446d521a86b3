"""`voicefleet keys limit NAME --minutes-day 600 --spend-month 250 --sessions 5`: a key's budgets,
changed at runtime like capacity (every replica within about a second, audited, kept; the route:
`PATCH /capacity` with `budget.NAME.KIND` values, docs/operations.md "Budgets")."""

from __future__ import annotations

import json
from typing import Any

import click

from voicefleet.api import call, path
from voicefleet.capacity import show_capacity
from voicefleet.options import common_options

KINDS = ("minutes-day", "minutes-month", "spend-month", "sessions")
NONE = "none"  # `--sessions none`: the budget removed


def budget_of(kind: str, raw: str) -> float | int | None:
    """`raw` as budget `kind`'s value (None: removed), or a usage error naming what to send."""
    if raw == NONE:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shape = "an amount in dollars (e.g. 250)" if kind == "spend-month" else "a whole number (e.g. 600)"
        raise click.BadParameter(f"{raw!r} is not a budget: send {shape}, or {NONE} to remove it",
                                 param_hint=f"--{kind}")
    return value


@click.command(name="limit")
@click.argument("name")
@click.option("--minutes-day", metavar="N", help="Session minutes a UTC day (none: no budget).")
@click.option("--minutes-month", metavar="N", help="Session minutes a UTC calendar month.")
@click.option("--spend-month", metavar="DOLLARS", help="Spend a UTC calendar month, in dollars.")
@click.option("--sessions", metavar="N", help="Sessions at once.")
@common_options
def limit(name: str, **given: str | None) -> None:
    """Set key NAME's budgets (an admin key): a start over one is refused (429) naming the budget, what
    was used and when it resets. Applied at every replica within about a second, audited.

    \b
    voicefleet keys limit acme --minutes-day 600 --sessions 5
    voicefleet keys limit acme --sessions none          remove a budget"""
    change: dict[str, Any] = {f"budget.{name}.{kind}": budget_of(kind, raw)
                              for kind in KINDS if (raw := given[kind.replace("-", "_")]) is not None}
    if not change:
        raise click.UsageError(f"name a budget to set: --{', --'.join(KINDS)} (e.g. --minutes-day 600)")
    body = call("PATCH", path("capacity"), change)
    for warning in body.get("warnings") or ():
        click.echo(f"warning: {warning}", err=True)
    show_capacity({**body, "values": {n: v for n, v in (body.get("values") or {}).items()
                                      if n.startswith(f"budget.{name}.")}})
