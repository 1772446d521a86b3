"""`voicefleet config check | explain NAME | diff`: the dispatcher's configuration, read here, before
any start. The dispatcher's own parsers do the reading (`python -m dispatcher.serving.config_command`,
in this checkout, with this environment), so the command and a start can never disagree; nothing is
sent and no port is opened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

MODULE = "dispatcher.serving.config_command"
TIMEOUT_SECONDS = 120  # the providers' parsers import their clients: seconds on a busy machine, never minutes


def _run(*arguments: str) -> None:
    if not (Path.cwd() / "dispatcher" / "settings" / "__init__.py").is_file():
        raise click.ClickException("run it in the voicefleet checkout (where dispatcher/ is): it reads the "
                                   "configuration with the dispatcher's own code")
    try:  # the environment passes as it is: no value on a command line
        done = subprocess.run([sys.executable, "-m", MODULE, *arguments], timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise click.ClickException(f"reading the configuration took over {TIMEOUT_SECONDS} s") from None
    sys.exit(done.returncode)


@click.group("config")
def config() -> None:
    """Check, explain and compare the dispatcher's settings (environment and VOICEFLEET_CONFIG)."""


@config.command("check")
def check() -> None:
    """Every fault of the configuration, one a line; exit 1 if any (like a start would refuse)."""
    _run("check")


@config.command("explain")
@click.argument("name")
def explain(name: str) -> None:
    """A setting's meaning, type, default, current value and where that value comes from."""
    _run("explain", name)


@config.command("diff")
def diff() -> None:
    """The settings that differ from their defaults, secrets masked."""
    _run("diff")
