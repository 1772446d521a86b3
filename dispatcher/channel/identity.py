"""Whether a hello comes from the machine its credential was issued for: the provider's own word.

A bot's channel credential is one of its launch values, and launch values are readable by more than
the bot (`ecs:DescribeTasks` shows a task's overrides, `compute.instances.get` a VM's metadata, the
Fly API a machine's config). Whoever reads one could dial first as that machine. Where the provider
gives each machine an identity of its own, the hello carries it: a token the provider signs, which
only that machine can get, for the channel's URL as its audience. The machines provider checks it
names the machine the dispatcher launched for the credential's bot id or session
(dispatcher/machines/gce/identity.py, dispatcher/machines/fly/identity.py) before the hello counts
for anything, so a stolen launch credential opens nothing from elsewhere. Where a provider has no
identity to check, `Unverified` says why (docs/security.md, trust model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant


class MachineIdentity(Protocol):
    """The provider's check of a hello's identity token against the machine it launched."""

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        """Why the hello is not from the machine launched as `grant`'s subject, or None."""
        ...


class Unverified:
    """A provider whose machines have no identity the dispatcher can check: the credential alone
    admits (`why` is the operator's answer to "why is that safe enough here")."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        return None


def identity_audience(env: Mapping[str, str]) -> str | None:
    """The audience bots' identity tokens must name: the channel URL they dial (a stack sets the
    same BOT_CHANNEL_URL for the dispatcher and its bots), unless the dispatcher names it apart."""
    return env.get("BOT_IDENTITY_AUDIENCE", "").strip() or env.get("BOT_CHANNEL_URL", "").strip() or None
