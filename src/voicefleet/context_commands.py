"""`voicefleet context add|use|list|remove`: name several deployments and switch between them
(src/voicefleet/contexts.py). The key is never written: a context names the variable that holds it,
or the command that prints it."""

from __future__ import annotations

import os
from collections.abc import Mapping

import click

from voicefleet.contexts import CONTEXT_NAME, ROLES, VARIABLE_NAME, Context, load, save
from voicefleet.errors import UsageLine
from voicefleet.options import print_json, wants_json
from voicefleet.settings import DEFAULT_URL, is_address
from voicefleet.tables import table


@click.group()
def context() -> None:
    """Several deployments, by name: `context add`, `context use`, `context list`, `context remove`."""


@context.command("add")
@click.argument("name")
@click.option("--url", "address", required=True, metavar="URL", help="The deployment's dispatcher address.")
@click.option("--key-env", metavar="VARIABLE", help="The environment variable that holds its key.")
@click.option("--key-command", metavar="COMMAND", help="A command that prints its key (a secret store's).")
@click.option("--role", type=click.Choice(sorted(ROLES)), default="admin", show_default=True,
              help="Which key it is: the admin's, or a client's (as VOICEFLEET_API_KEY).")
def add(name: str, address: str, key_env: str | None, key_command: str | None, role: str) -> None:
    """Add (or replace) the context NAME. Neither --key-env nor --key-command: a local keyless dispatcher."""
    if not CONTEXT_NAME.fullmatch(name):
        raise UsageLine(f"context name {name!r}: letters, digits, '.', '_' and '-', starting with a letter or digit")
    url = address.strip().rstrip("/")
    if not is_address(url):
        raise UsageLine(f"--url must be the dispatcher's address, such as {DEFAULT_URL} or https://voice.example.com, "
                        f"not {address!r}")
    if key_env is not None and key_command is not None:
        raise UsageLine("give --key-env or --key-command, not both")
    if key_env is not None and not VARIABLE_NAME.fullmatch(key_env):
        raise UsageLine("--key-env takes the variable's name (such as VOICEFLEET_PROD_KEY), not its value")
    if key_command is not None and not key_command.strip():
        raise UsageLine("--key-command is empty: give the command that prints the key")
    current, contexts = load(os.environ)
    contexts[name] = Context(name, url, key_env, key_command, role)
    path = save(os.environ, current, contexts)
    click.echo(f"context {name} saved in {path}" + ("" if current == name else f"; `voicefleet context use {name}`"))


@context.command("use")
@click.argument("name")
def use(name: str) -> None:
    """Send the following commands to the context NAME's dispatcher, with its key."""
    _, contexts = load(os.environ)
    _known(name, contexts, f": `voicefleet context add {name} --url URL --key-env VARIABLE` adds it")
    save(os.environ, name, contexts)
    click.echo(f"using context {name} ({contexts[name].url})")


@context.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Forget the context NAME (its key stays where it was: only the name, address and key source go)."""
    current, contexts = load(os.environ)
    _known(name, contexts)
    del contexts[name]
    save(os.environ, None if current == name else current, contexts)
    click.echo(f"context {name} removed" + ("; no context is in use now (`voicefleet context use NAME`)"
                                            if current == name else ""))


@context.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the contexts as JSON.")
def listing(as_json: bool) -> None:
    """The contexts; `*` marks the one in use."""
    current, contexts = load(os.environ)
    if as_json or wants_json(click.get_current_context()):
        print_json({"current": current, "contexts": {n: c.as_json() for n, c in sorted(contexts.items())}})
        return
    rows = [["*" if name == current else "", name, c.url, c.role,
             f"env {c.key_env}" if c.key_env else f"command {c.key_command}" if c.key_command else "none"]
            for name, c in sorted(contexts.items())]
    click.echo(table(["", "NAME", "URL", "ROLE", "KEY FROM"], rows))


def _known(name: str, contexts: Mapping[str, Context], way_forward: str = "") -> None:
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none yet"
        raise UsageLine(f"no context {name} (known: {known}){way_forward}")
