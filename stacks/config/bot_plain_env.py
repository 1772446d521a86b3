"""The bots' plain environment: what a cloud stack sets in plain (never a secret) on every bot it runs, read
once by each cloud (stacks/aws/stack.py: the task definitions; stacks/gcp/stack.py: the instance template
and the Cloud Run job; stacks/azure/stack.py: ACI_BOT_SETTINGS and the launch policy's variables).

- The observability settings (stacks/config/observability.py): JSON logs and the trace collector.
- The account's Twilio region (twilioRegion, twilioEdge: TWILIO_REGION, TWILIO_EDGE), only those set, as the
  dispatcher gets them (stacks/config/calling_out.py): a bot built on Pipecat's runner hangs its call up
  through Twilio's REST API at that region's host (its TwilioFrameSerializer reads both), and the region's
  credentials are refused at US1's. Unset, nothing is added, so a stack without them keeps its bots as
  they were.

On k8s the dispatcher makes the bots' pods and tells each the Twilio region, the log format and the trace
collector it has itself (dispatcher/machines/k8s/settings.py `told_bots`), as it tells them the model service;
the collector's headers are a key of the bots' Secret there (stacks/k8s/bot_secret.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.phone.twilio_host import twilio_host
from stacks.config.calling_out import REGION_KEYS
from stacks.config.model import Settings
from stacks.config.reader import Reader


def twilio_region(phone: Mapping[str, str]) -> dict[str, str]:
    """TWILIO_REGION and TWILIO_EDGE among the stack's plain phone settings, those set, spelt as the dispatcher
    reads them (`IE1 ` -> `ie1`): Pipecat puts the bot's value in the host name as it is, and a respelt key
    leaves the bots' templates and task definitions as they were."""
    host = twilio_host(phone)  # checked when the keys were read (calling_out.py): refuses nothing here
    spelt = {"TWILIO_REGION": host.region, "TWILIO_EDGE": host.edge}
    return {variable: spelt[variable] for variable in REGION_KEYS.values() if variable in phone}


def bot_plain_environment(settings: Settings) -> dict[str, str]:
    """Every plain variable the stack sets on its bots, variable -> value."""
    return {**settings.observability.bot_environment(), **twilio_region(settings.phone)}


def check_names_apart(cfg: Reader, settings: Settings) -> None:
    """A botSecrets name the stack's Twilio region sets too is refused: a bot's environment holds one value
    per name, and which of the two it got would depend on the cloud."""
    keys = {variable: key for key, variable in REGION_KEYS.items()}
    for name in sorted(settings.secrets.bot.keys() & twilio_region(settings.phone).keys()):
        raise cfg.fail("botSecrets", f"sets {name}, which {cfg.key(keys[name])} sets too for the dispatcher and "
                                     f"the bots (one name, one value in a bot's environment): keep "
                                     f"{cfg.key(keys[name])} and remove the bot's "
                                     f"(pulumi config rm --path 'botSecrets.{name}')")
