"""`voicefleet capacity`: the session cap, each key's share, the reserve's bounds and target and the
provider's cap as they apply now, beside their settings and what is in use; `capacity set` changes
several in one audited change, at every replica within about a second (docs/cli.md; the routes:
`GET`/`PATCH /capacity`, docs/http-api.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from voicefleet.api import call, path
from voicefleet.options import common_options, print_json, wants_json
from voicefleet.tables import table

DEFAULT = "default"  # `NAME=default`: back to the setting


def show_capacity(body: Mapping[str, Any]) -> None:
    if wants_json(click.get_current_context()):
        print_json(dict(body))
        return
    click.echo(capacity_table(body))
    if body.get("key_warm_share"):  # past it a key's starts go cold (their timeline says key_warm_share)
        click.echo(f"each key's warm share: {body['key_warm_share']} warm bots a minute "
                   "(KEY_WARM_SHARE of reserve.max)")


def capacity_table(body: Mapping[str, Any]) -> str:
    """Each value: NAME, VALUE (what applies), SETTING, RUNTIME (`-`: none, the setting applies), IN USE."""
    rows = [[name, _shown(row.get("value")), _shown(row.get("setting")), _shown(row.get("runtime")),
             _shown(row.get("in_use"))] for name, row in (body.get("values") or {}).items()]
    return table(["NAME", "VALUE", "SETTING", "RUNTIME", "IN USE"], rows)


def _shown(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def changes_of(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`sessions=200 key.acme=0.5 reserve.target=default` → the PATCH body (`default`: null)."""
    change: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name or not raw:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE: e.g. sessions=200, key.acme=0.5, "
                                     f"reserve.max={DEFAULT}", param_hint="CHANGES")
        if raw == DEFAULT:
            change[name] = None
            continue
        try:
            change[name] = json.loads(raw)
        except ValueError:
            raise click.BadParameter(f"{pair!r}: {raw!r} is not a number (or {DEFAULT}, back to the setting)",
                                     param_hint="CHANGES") from None
    return change


@click.group(invoke_without_command=True)
@common_options
@click.pass_context
def capacity(ctx: click.Context) -> None:
    """The capacity values as they apply now, their settings and what is in use (an admin key).

    Without a subcommand: the table (as `voicefleet capacity show`)."""
    if ctx.invoked_subcommand is None:
        show_capacity(call("GET", path("capacity")))


@capacity.command(name="show")
@common_options
def show() -> None:
    """NAME, VALUE (what applies), SETTING, RUNTIME (the value set here; `-`: the setting applies), IN USE."""
    show_capacity(call("GET", path("capacity")))


@capacity.command(name="set")
@click.argument("changes", nargs=-1, required=True, metavar="NAME=VALUE...")
@common_options
def set_values(changes: tuple[str, ...]) -> None:
    """Change several values in one change, applied at every replica within about a second and audited
    (`voicefleet audit --runtime`). NAME=default returns NAME to its setting. A cap lowered below what
    runs stops nothing: it refuses new starts until enough sessions end.

    \b
    voicefleet capacity set sessions=200 reserve.max=20 key.acme=0.5
    voicefleet capacity set reserve.target=8            pin the reserve's ready bots
    voicefleet capacity set sessions=default            back to MAX_CONCURRENT_SESSIONS"""
    show_capacity(call("PATCH", path("capacity"), changes_of(changes)))
