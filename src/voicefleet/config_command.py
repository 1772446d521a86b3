"""`voicefleet config check | explain NAME | diff`: the dispatcher's configuration, read here, before
any start. The dispatcher's own parsers do the reading (`python -m dispatcher.serving.config_command`,
in this checkout, with this environment), so the command and a start can never disagree; nothing is
sent and no port is opened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

MODULE = "dispatcher.serving.config_command"
CONFIG_STDIN = "--config-stdin"  # the module reads --config's items from stdin (a JSON list)
TIMEOUT_SECONDS = 360  # the providers' parsers (and with --stack the program under mocks): seconds, never minutes


def _run(*arguments: str, overrides: tuple[str, ...] = ()) -> None:
    if not (Path.cwd() / "dispatcher" / "settings" / "__init__.py").is_file():
        raise click.ClickException("run it in the voicefleet checkout (where dispatcher/ is): it reads the "
                                   "configuration with the dispatcher's own code")
    # The environment passes as it is and --config's items on stdin: no value on a command line.
    stdin = (CONFIG_STDIN,) if overrides else ()
    try:
        done = subprocess.run([sys.executable, "-m", MODULE, *arguments, *stdin], timeout=TIMEOUT_SECONDS,
                              input=json.dumps(list(overrides)) if overrides else None, text=True, check=False)
    except subprocess.TimeoutExpired:
        raise click.ClickException(f"reading the configuration took over {TIMEOUT_SECONDS} s") from None
    sys.exit(done.returncode)


@click.group("config")
def config() -> None:
    """Check, explain and compare the dispatcher's settings (environment and VOICEFLEET_CONFIG)."""


def _stack(stack: str | None, overrides: tuple[str, ...]) -> tuple[str, ...]:
    if overrides and stack is None:
        raise click.UsageError("--config needs --stack (it sets a stack key)")
    return ("--stack", stack) if stack else ()


STACK_OPTION = click.option("--stack", metavar="NAME", default=None,
                            help="check the environment stack NAME gives its dispatcher (stacks/Pulumi.NAME.yaml), "
                                 "offline, instead of this one")
CONFIG_OPTION = click.option("--config", "overrides", metavar="KEY=VALUE", multiple=True,
                             help="with --stack: as if `pulumi config set KEY VALUE` had set it")


@config.command("check")
@STACK_OPTION
@CONFIG_OPTION
def check(stack: str | None, overrides: tuple[str, ...]) -> None:
    """Every fault of the configuration, one a line; exit 1 if any (like a start would refuse)."""
    _run("check", *_stack(stack, overrides), overrides=overrides)


@config.command("explain")
@click.argument("name")
@STACK_OPTION
@CONFIG_OPTION
def explain(name: str, stack: str | None, overrides: tuple[str, ...]) -> None:
    """A setting's meaning, type, default, current value and where that value comes from."""
    _run("explain", name, *_stack(stack, overrides), overrides=overrides)


@config.command("diff")
@STACK_OPTION
@CONFIG_OPTION
def diff(stack: str | None, overrides: tuple[str, ...]) -> None:
    """The settings that differ from their defaults, secrets masked."""
    _run("diff", *_stack(stack, overrides), overrides=overrides)
