"""`voicefleet`: operate a voicefleet deployment from a terminal or a script, through the same HTTP
API every client uses (docs/cli.md). Nouns then verbs, as `gh` and `kubectl`: `voicefleet releases
promote NAME`. Exit codes: src/voicefleet/errors.py."""

from __future__ import annotations

import click

from voicefleet.audit import audit
from voicefleet.calls import calls
from voicefleet.capacity import capacity
from voicefleet.context_commands import context
from voicefleet.key_limits import limit
from voicefleet.keys import keys
from voicefleet.lazy_group import LazyGroup
from voicefleet.options import common_options
from voicefleet.releases import releases
from voicefleet.session_group import session
from voicefleet.sessions import sessions
from voicefleet.status import status
from voicefleet.usage import usage


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             lazy={"loadtest": ("voicefleet.loadtest.command:loadtest",
                                "Place real voice sessions against a dispatcher and measure each."),
                   "artifacts": ("voicefleet.artifacts:artifacts",
                                 "A recorded session's files: list, get (download), delete (erase)."),
                   "config": ("voicefleet.config_command:config",
                              "Check, explain and compare the dispatcher's settings."),
                   "eval": ("voicefleet.evals.command:eval_command",
                            "Run scenarios as real calls against a deployment and check every turn.")})
@click.version_option(package_name="voicefleet", prog_name="voicefleet", message="%(prog)s %(version)s")
@common_options
def voicefleet() -> None:
    """Operate a voicefleet deployment through its HTTP API.

    The admin key comes from VOICEFLEET_ADMIN_KEY, a client's key from VOICEFLEET_API_KEY (never a
    flag); the dispatcher's address from --url or VOICEFLEET_URL. Exit codes: 0 done, 1 the
    dispatcher refused, 2 a usage error, 3 the dispatcher could not be reached."""


voicefleet.add_command(releases)
voicefleet.add_command(status)
voicefleet.add_command(sessions)
voicefleet.add_command(calls)
voicefleet.add_command(session)
voicefleet.add_command(audit)
voicefleet.add_command(capacity)
voicefleet.add_command(keys)
keys.add_command(limit)
voicefleet.add_command(context)
voicefleet.add_command(usage)


def main() -> None:
    voicefleet(prog_name="voicefleet")
