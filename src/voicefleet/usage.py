"""`voicefleet usage`: sessions, minutes and cost per key, release, day or model, from the usage the
dispatcher rolls up as sessions end (`GET /usage`), for every replica; as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import click

from voicefleet.api import call
from voicefleet.options import common_options, print_json, wants_json
from voicefleet.tables import csv_cell, printable, table

BY = ("key", "release", "day", "model")


@click.command()
@click.option("--by", "by", type=click.Choice(BY), default="key", show_default=True, help="One row per what.")
@click.option("--since", default="30d", show_default=True, help="A number of days (30d) or a day (2026-11-01).")
@click.option("--until", default=None, help="The last day (UTC), e.g. 2026-11-30; default today.")
@click.option("--key", default=None, help="One key's usage only (its name).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one line a row, for a spreadsheet or a billing job.")
@common_options
def usage(by: str, since: str, until: str | None, key: str | None, as_csv: bool) -> None:
    """Ended sessions, their minutes and their cost (machine and priced services): `SESSIONS`,
    `MINUTES`, `COST $`, `NOT PRICED` (what the cost leaves out: a model or a machine without a price).
    With --by model: each service's model, its cost and counts. Needs VOICEFLEET_ADMIN_KEY; at most
    400 days at once."""
    params: dict[str, Any] = {"by": by, "since": since}
    if until is not None:
        params["until"] = until
    if key is not None:
        params["key"] = key
    body = call("GET", "/usage", params=params)
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    headers, rows = _rows(body, by)
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([h.lower().replace(" $", "_usd").replace(" ", "_") for h in headers])
        writer.writerows([csv_cell(cell) for cell in row] for row in rows)
        click.echo(out.getvalue(), nl=False)
        return
    click.echo(table(headers, rows))
    click.echo(printable(f"{body.get('since')} to {body.get('until')} (UTC), in {body.get('currency', 'USD')}"))


def _rows(body: dict[str, Any], by: str) -> tuple[list[str], list[list[str]]]:
    lines = body.get("rows", [])
    if by == "model":
        return (["MODEL", "COST $", "NOT PRICED", "COUNTS"],
                [[str(r.get("model")), _usd(r.get("cost_usd")), str(r.get("not_priced", 0)),
                  " ".join(f"{k}={v}" for k, v in sorted((r.get("units") or {}).items()))] for r in lines])
    totals = body.get("totals") or {}
    rows = [[str(r.get(by)), str(r.get("sessions", 0)), f"{r.get('minutes', 0):.2f}", _usd(r.get("cost_usd")),
             str(r.get("not_priced", 0))] for r in lines]
    rows.append(["TOTAL", str(totals.get("sessions", 0)), f"{totals.get('minutes', 0):.2f}",
                 _usd(totals.get("cost_usd")), str(totals.get("not_priced", 0))])
    return [by.upper(), "SESSIONS", "MINUTES", "COST $", "NOT PRICED"], rows


def _usd(value: object) -> str:
    return f"{value:.6f}" if isinstance(value, int | float) else "-"
