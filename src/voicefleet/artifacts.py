"""`voicefleet artifacts list|get|delete ID`: a recorded session's objects (its recording, transcript,
bot logs and report; docs/recording.md), listed, downloaded through their short-lived URLs, or erased.
With the admin's key when VOICEFLEET_ADMIN_KEY is set (the dispatcher audits an admin's read or
erasure of another key's session), else the client's, as `voicefleet session` does."""

from __future__ import annotations

from pathlib import Path

import click

from voicefleet.api import path
from voicefleet.artifact_files import inside, listing, plainly, save
from voicefleet.errors import Refused, UsageLine
from voicefleet.options import common_options, print_json, wants_json
from voicefleet.sessions import session_api
from voicefleet.tables import printable, table


@click.group()
@common_options
def artifacts() -> None:
    """A recorded session's recording, transcript, logs and report: list, get (download), delete (erase)."""


@artifacts.command("list")
@click.argument("session_id", metavar="ID")
@common_options
def list_artifacts(session_id: str) -> None:
    """The session's objects and their sizes (`--json`: with their download URLs, which expire)."""
    with session_api() as api:
        found = listing(api, session_id)
    if wants_json(click.get_current_context()):
        print_json(found)
        return
    click.echo(table(["NAME", "BYTES"], [[str(a.get("name")), str(a.get("size"))] for a in found["artifacts"]]))
    click.echo(printable(f"in {found.get('where')}: {found.get('folder')}"), err=True)


@artifacts.command("get")
@click.argument("session_id", metavar="ID")
@click.option("-o", "--output", "into", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to write: DIR/ID/ is made, one file per object.")
@click.option("--force", is_flag=True, help="Overwrite the files of an earlier download.")
@common_options
def get(session_id: str, into: Path, force: bool) -> None:
    """Download every object of the session into DIR/ID/, each checked against its listed size."""
    folder = into / session_id
    with session_api() as api:
        found = listing(api, session_id)
        timeout = api.target.timeout
    objects = found["artifacts"]
    present = [inside(folder, str(a.get("name", ""))) for a in objects]
    there = [target for target in present if target.exists()]
    if there and not force:
        raise UsageLine(f"{there[0]} exists (an earlier download): --force to overwrite it, or -o another folder")
    written = [save(artifact, folder, timeout, found.get("expires_in")) for artifact in objects]
    for target, artifact in zip(written, objects, strict=True):
        click.echo(printable(f"{target}  {artifact.get('size')} bytes"))
    click.echo(f"{len(written)} objects of session {session_id} written to {folder}")


@artifacts.command("delete")
@click.argument("session_id", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask to confirm.")
@common_options
def delete(session_id: str, yes: bool) -> None:
    """Erase every object of the session (audited: who, when, which objects; no content of the call)."""
    if not yes:
        click.confirm(f"Erase every artifact of session {session_id}? It cannot be undone", abort=True)
    with session_api() as api:
        try:
            erased = api.call("DELETE", path("sessions", session_id, "artifacts"))
        except Refused as refused:
            raise plainly(refused, session_id) from None
    if wants_json(click.get_current_context()):
        print_json(erased)
        return
    for key in erased.get("erased", []):
        click.echo(printable(f"erased {key}"))
    click.echo(printable(f"{len(erased.get('erased', []))} objects of session {session_id} erased "
                         f"(by {erased.get('by')})"))
