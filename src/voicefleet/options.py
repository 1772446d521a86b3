"""The options every `voicefleet` command takes, wherever on the line a person puts them
(`voicefleet --json releases` and `voicefleet releases --json` alike), as `gh` and `kubectl` take
theirs: --url, --timeout, --json. The admin key is deliberately not among them (src/voicefleet/settings.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from voicefleet.contexts import with_context
from voicefleet.errors import UsageLine
from voicefleet.settings import DEFAULT_TIMEOUT, DEFAULT_URL, URL_VARIABLE, Target, cleartext_warning, target

F = TypeVar("F", bound=Callable[..., Any])
_GIVEN = "voicefleet.options"  # ctx.meta is shared by every context of one invocation


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> None:
    if value is not None and value is not False and param.name is not None:
        ctx.meta.setdefault(_GIVEN, {})[param.name] = value


def common_options(command: F) -> F:
    """Add --url, --timeout and --json to a command or group."""
    options = [
        click.option("--url", metavar="URL", expose_value=False, callback=_remember,
                     help=f"The dispatcher's address [env {URL_VARIABLE}; default {DEFAULT_URL}]."),
        click.option("--timeout", metavar="SECONDS", type=click.FloatRange(min=0, min_open=True),
                     expose_value=False, callback=_remember,
                     help=f"How long to wait for each answer [default {DEFAULT_TIMEOUT:g}]."),
        click.option("--json", "as_json", is_flag=True, default=False, expose_value=False, callback=_remember,
                     help="Print the API's JSON answer instead of a table."),
        click.option("--context", "context_name", metavar="NAME", expose_value=False, callback=_remember,
                     help="This command goes to context NAME (`voicefleet context list`), not the one in use."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def target_of(ctx: click.Context) -> Target:
    given = ctx.meta.get(_GIVEN, {})
    env = dict(os.environ)
    named = given.get("context_name")
    if named is not None and given.get("url"):
        raise UsageLine(f"give --context {named} or --url, not both: a context's key goes to its own address only")
    if named is not None or (not given.get("url") and not env.get(URL_VARIABLE, "").strip()):
        # The context's address and its key, or no context (src/voicefleet/contexts.py); said on stderr, so
        # an answer printed as JSON stays JSON.
        env, used = with_context(env, named)
        if used is not None:
            click.echo(f"context: {used.name} ({used.url})", err=True)
    chosen = target(env, given.get("url"), given.get("timeout", DEFAULT_TIMEOUT))
    warning = cleartext_warning(chosen)
    if warning is not None:
        click.echo(warning, err=True)
    return chosen


def wants_json(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_GIVEN, {}).get("as_json"))


def print_json(body: object) -> None:
    click.echo(json.dumps(body, indent=2))
