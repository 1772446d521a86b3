"""`voicefleet releases`: which bot versions take the callers, and changing that in seconds
(docs/cli.md; the routes: docs/http-api.md). Each change prints the traffic as it now stands."""

from __future__ import annotations

from typing import Any

import click

from voicefleet.api import Api, call, path
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.smoke import smoke
from voicefleet.tables import ago, moment, printable, table


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
            str(release.get("live_sessions", "-")),  # "-": a client key's listing leaves the load out
            str(release.get("idle_bots", "-")),
            str((release.get("smoke") or {}).get("status") or "-"),
            eval_cell(release.get("eval")),
            f"{state}: {health['reason']}" if health.get("reason") else state,
        ])
    click.echo(table(["NAME", "WEIGHT", "STABLE", "LIVE", "IDLE", "SMOKE", "EVAL", "HEALTH"], rows))


def eval_cell(verdict: object) -> str:
    """A release's last suite verdict: `3/3 ✓ 12m ago`, `2/3 ✗ 5m ago`, or `-` when none was recorded."""
    if not isinstance(verdict, dict):
        return "-"
    mark = "✓" if verdict.get("ok") else "✗"
    return f"{verdict.get('passed')}/{verdict.get('runs')} {mark} {ago(verdict.get('at'))}"


def show_change(body: dict[str, Any]) -> None:
    """A change's answer: what it did (on stderr, so the table stays a table), then the traffic."""
    if not wants_json(click.get_current_context()) and body.get("reason"):
        click.echo(printable(f"{body['reason']} (by {body.get('changed_by') or '-'})"), err=True)
    show_traffic(body)


def listing() -> dict[str, Any]:
    """The list with the admin key, or with the client's own when only VOICEFLEET_API_KEY is set: a
    client key reads the releases and their traffic, not the deployment's load."""
    target = target_of(click.get_current_context())
    with Api(target, client=target.admin_key is None and target.api_key is not None) as api:
        return api.call("GET", path("releases"))


@click.group(invoke_without_command=True)
@common_options
@click.pass_context
def releases(ctx: click.Context) -> None:
    """The bot's releases and the share of new sessions each takes.

    Without a subcommand: the list (as `voicefleet releases list`)."""
    if ctx.invoked_subcommand is None:
        show_traffic(listing())


@releases.command(name="list")
@common_options
def list_releases() -> None:
    """Each release: weight, whether it is the stable one, live sessions, idle bots, smoke, its
    scenario suite's last verdict (EVAL), health."""
    show_traffic(listing())


@releases.command(name="set")
@click.argument("changes", nargs=-1, required=True, metavar="NAME WEIGHT | NAME=WEIGHT...")
@common_options
@click.pass_context
def set_weight(ctx: click.Context, changes: tuple[str, ...]) -> None:
    """Send WEIGHT percent of new sessions to release NAME, the rest to the stable release; or set every
    release's weight in one change (releases not named get 0; they add up to 100).

    \b
    voicefleet releases set r-9f2c1a7b3d 10       a 10 % canary
    voicefleet releases set r-9f2c1a7b3d 0        no new sessions to it
    voicefleet releases set stable=90 next=10     every weight at once"""
    if all("=" in change for change in changes):
        show_change(call("PUT", path("releases"), {"weights": weights_of(ctx, changes)}))
    elif len(changes) == 2 and not any("=" in change for change in changes):
        name, weight = changes
        show_change(call("PUT", path("releases", name), {"weight": percent(ctx, _WEIGHT, weight)}))
    else:
        raise click.UsageError("releases set takes NAME WEIGHT (one release) or NAME=WEIGHT for each release "
                        "(every weight at once), such as `voicefleet releases set stable=90 next=10`")


_WEIGHT = click.Argument(["weight"])


def weights_of(ctx: click.Context, changes: tuple[str, ...]) -> dict[str, int]:
    """`a=90 b=10` as {"a": 90, "b": 10}; a release named twice is refused, not the last one kept."""
    weights: dict[str, int] = {}
    for change in changes:
        name, _, weight = change.partition("=")
        if not name.strip():
            raise click.UsageError(f"{change!r}: name the release, as NAME=WEIGHT")
        if name in weights:
            raise click.UsageError(f"{name} is named twice: give each release one weight")
        weights[name] = percent(ctx, _WEIGHT, weight)
    return weights


@releases.command()
@click.argument("name")
@common_options
def promote(name: str) -> None:
    """Send every new session to release NAME; it becomes the stable release."""
    show_change(call("POST", path("releases", name, "promote")))


@releases.command()
@common_options
def rollback() -> None:
    """Send every new session back to the stable release (live sessions run on); right after a promote,
    back to the release that was stable before it."""
    show_change(call("POST", path("releases", "rollback")))


@releases.command()
@click.option("--limit", type=click.IntRange(1, 1000), help="How many changes, newest first [default: the API's].")
@common_options
def history(limit: int | None) -> None:
    """Who changed the traffic, when, from what to what, newest first."""
    body = call("GET", path("releases", "history"), params={"limit": limit} if limit else None)
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    rows = [[moment(change.get("at")), str(change.get("region") or "-"), str(change.get("by") or "-"),
             _weights(change.get("from")), _weights(change.get("to")), str(change.get("reason") or "")]
            for change in body.get("changes", [])]
    click.echo(table(["WHEN", "REGION", "BY", "FROM", "TO", "REASON"], rows))


releases.add_command(smoke)


def _weights(weights: object) -> str:
    """`{"a": 90, "b": 10}` as `a=90,b=10`: one cell, no spaces, for people who cut columns."""
    if not isinstance(weights, dict) or not weights:
        return "-"
    return ",".join(f"{name}={weight}" for name, weight in weights.items())
