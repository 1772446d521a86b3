"""`voicefleet keys`: API keys made and revoked at runtime, beside DISPATCHER_API_KEYS (an admin key;
docs/cli.md, the routes: `/keys`, docs/http-api.md). A new key's secret is printed once."""

from __future__ import annotations

import re
from urllib.parse import quote

import click

from voicefleet.api import Api, call, path
from voicefleet.options import common_options, print_json, target_of, wants_json
from voicefleet.tables import moment, table


@click.group()
def keys() -> None:
    """API keys made at runtime: create, list, revoke (an admin key)."""


@keys.command(name="create")
@click.argument("name")
@click.option("--another", is_flag=True, help="A second secret for an existing key (a rotation: move the "
              "clients to it, then revoke the old one with --secret-id), or a new secret for a name used and "
              "revoked before, for the same party: the name's sessions and recordings are still its own.")
@common_options
def create(name: str, another: bool) -> None:
    """Create key NAME and print its secret, once: store it in your secret manager now. Every replica
    takes it within about a second."""
    body = call("POST", path("keys"), {"name": name, "another": another} if another else {"name": name})
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    click.echo(f"key {body.get('name')} (secret id {body.get('secret_id')}): its secret, shown this once:")
    click.echo(str(body.get("secret")))


@keys.command(name="list")
@common_options
def list_keys() -> None:
    """Every key: NAME, SOURCE (settings or runtime), SECRET ID, CREATED, LAST USED, SESSIONS (started)."""
    body = call("GET", path("keys"))
    if wants_json(click.get_current_context()):
        print_json(body)
        return
    rows = [[str(key.get("name")), str(key.get("source")), str(key.get("secret_id") or "-"),
             moment(key.get("created")) if key.get("created") else "-",
             moment(key.get("last_used")) if key.get("last_used") else "-",
             "-" if key.get("sessions") is None else str(key.get("sessions"))] for key in body.get("keys", [])]
    click.echo(table(["NAME", "SOURCE", "SECRET ID", "CREATED", "LAST USED", "SESSIONS"], rows))


@keys.command(name="revoke")
@click.argument("name", required=False)
@click.option("--secret-id", "secret_id", metavar="ID", help="Revoke this one secret (the old one of a rotation).")
@common_options
def revoke(name: str | None, secret_id: str | None) -> None:
    """Revoke key NAME (every secret of it), or one secret with --secret-id: refused at every replica within
    about a second. Its sessions stay an admin key's to read and stop."""
    if (name is None) == (secret_id is None):
        raise click.UsageError("name a key (voicefleet keys revoke NAME) or one secret (--secret-id ID), not both")
    if secret_id is not None and not re.fullmatch(r"[0-9a-f]{12}", secret_id):
        # Refused before it is sent: a secret pasted here would land in the URL, so in access logs.
        raise click.UsageError("--secret-id takes the 12 hex digits after vf_ in a secret (`voicefleet keys list` "
                               "shows them), never the secret itself")
    route = path("keys", name) if name is not None else path("keys") + f"?secret_id={quote(str(secret_id), safe='')}"
    with Api(target_of(click.get_current_context())) as api:
        api.send("DELETE", route)
    click.echo(f"revoked {'key ' + name if name is not None else 'secret ' + str(secret_id)}")
