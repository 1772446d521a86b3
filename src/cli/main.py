"""`voicefleet`: operate a voicefleet deployment from a terminal or a script, through the same HTTP
API every client uses (docs/cli.md). Nouns then verbs, as `gh` and `kubectl`: `voicefleet releases
promote NAME`. Exit codes: cli/errors.py."""

from __future__ import annotations

import click

from cli.audit import audit
from cli.loadtest.command import loadtest
from cli.options import common_options
from cli.releases import releases
from cli.session_group import session
from cli.sessions import sessions
from cli.status import status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
def voicefleet() -> None:
    """Operate a voicefleet deployment through its HTTP API.

    The admin key comes from VOICEFLEET_ADMIN_KEY, a client's key from VOICEFLEET_API_KEY (never a
    flag); the dispatcher's address from --url or VOICEFLEET_URL. Exit codes: 0 done, 1 the
    dispatcher refused, 2 a usage error, 3 the dispatcher could not be reached."""


voicefleet.add_command(releases)
voicefleet.add_command(status)
voicefleet.add_command(sessions)
voicefleet.add_command(session)
voicefleet.add_command(loadtest)
voicefleet.add_command(audit)


def main() -> None:
    voicefleet(prog_name="voicefleet")
