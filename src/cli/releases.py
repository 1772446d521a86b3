"""`voicefleet releases`: which bot versions take the callers, and changing that in seconds
(docs/cli.md; the routes: docs/http-api.md). Each change prints the traffic as it now stands."""

from __future__ import annotations

from typing import Any

import click

from cli.api import call, path
from cli.options import common_options, print_json, wants_json
from cli.smoke import smoke
from cli.tables import moment, table


def percent(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A whole percent, 0 to 100, written `10` or `10%`."""
    text = value.strip().removesuffix("%")
    if not text.isdigit() or int(text) > 100:
        raise click.BadParameter(f"{value!r} is not a weight: a whole percent from 0 to 100, such as 10")
    return int(text)


def show_traffic(body: dict[str, Any]) -> None:
    """A `GET /releases` body: the table, or the JSON as the API gave it."""
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    rows = []
    for release in body.get("releases", []):
        health = release.get("health") or {}
        state = str(health.get("state", "-"))
        rows.append([
            str(release.get("name")),
            f"{release.get('weight', 0)}%",
            "yes" if release.get("stable") else "",
            str(release.get("live_sessions", 0)),
            str(release.get("idle_bots", 0)),
            f"{state}: {health['reason']}" if health.get("reason") else state,
        ])
    click.echo(table(["NAME", "WEIGHT", "STABLE", "LIVE", "IDLE", "HEALTH"], rows))


@click.group(invoke_without_command=True)
@common_options
@click.pass_context
def releases(ctx: click.Context) -> None:
    """The bot's releases and the share of new sessions each takes.

    Without a subcommand: the list (as `voicefleet releases list`)."""
    if ctx.invoked_subcommand is None:
        show_traffic(call("GET", path("releases")))


@releases.command(name="list")
@common_options
def list_releases() -> None:
    """Each release: weight, whether it is the stable one, live sessions, idle bots, health."""
    show_traffic(call("GET", path("releases")))


@releases.command(name="set")
@click.argument("name")
@click.argument("weight", callback=percent)
@common_options
def set_weight(name: str, weight: int) -> None:
    """Send WEIGHT percent of new sessions to release NAME, the rest to the stable release.

    \b
    voicefleet releases set r-9f2c1a7b3d 10    a 10 % canary
    voicefleet releases set r-9f2c1a7b3d 0     no new sessions to it"""
    show_traffic(call("PUT", path("releases", name), {"weight": weight}))


@releases.command()
@click.argument("name")
@common_options
def promote(name: str) -> None:
    """Send every new session to release NAME; it becomes the stable release."""
    show_traffic(call("POST", path("releases", name, "promote")))


@releases.command()
@common_options
def rollback() -> None:
    """Send every new session back to the stable release (live sessions run on)."""
    show_traffic(call("POST", path("releases", "rollback")))


@releases.command()
@click.option("--limit", type=click.IntRange(1, 1000), help="How many changes, newest first [default: the API's].")
@common_options
def history(limit: int | None) -> None:
    """Who changed the traffic, when, from what to what, newest first."""
    body = call("GET", path("releases", "history"), params={"limit": limit} if limit else None)
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    rows = [[moment(change.get("at")), str(change.get("by") or "-"), _weights(change.get("from")),
             _weights(change.get("to")), str(change.get("reason") or "")]
            for change in body.get("changes", [])]
    click.echo(table(["WHEN", "BY", "FROM", "TO", "REASON"], rows))


releases.add_command(smoke)


def _weights(weights: object) -> str:
    """`{"a": 90, "b": 10}` as `a=90,b=10`: one cell, no spaces, for people who cut columns."""
    if not isinstance(weights, dict) or not weights:
        return "-"
    return ",".join(f"{name}={weight}" for name, weight in weights.items())
