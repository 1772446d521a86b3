"""Whether a hello comes from the machine its credential was issued for: the provider's own word.

A bot's channel credential is one of its launch values, and launch values are readable by more than
the bot (`ecs:DescribeTasks` shows a task's overrides, `compute.instances.get` a VM's metadata, the
Fly API a machine's config). Whoever reads one could dial first as that machine. Where the provider
gives each machine an identity of its own, the hello carries it: a token the provider signs, which
only that machine can get, for the channel's URL as its audience. The machines provider checks it
names the machine the dispatcher launched for the credential's bot id or session
(dispatcher/machines/gce/identity.py, dispatcher/machines/fly/identity.py; a Modal Sandbox's token,
dispatcher/machines/modal/identity.py, names no audience of ours) before the hello counts
for anything, so a stolen launch credential opens nothing from elsewhere. A local bot proves it is
the process launched for the credential through its own launch socket
(dispatcher/machines/local/launch_proof.py). Where a provider has no identity to check,
`Unverified` says why (docs/security.md, trust model).

A proof is good for minutes (a presigned request) to an hour (a JWT), and whoever captures one in
that time could present it again with the stolen credential: the newest hello of a session
replaces its link, so the replay would take the real bot's channel. `OneUse` admits each proof
once across every replica (the coordination store's record, kept until the proof expires); a bot
fetches a fresh proof for every dial (bot/channel_session.py), so its own re-dials still pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from voicefleet_settings.read import setting_text

if TYPE_CHECKING:  # for its annotation only: the Pulumi program imports this module (through the
    # machines' contract), and its environment has neither redis nor Prometheus, which the store has
    from dispatcher.store.coordination import OneTimeUse


@dataclass(frozen=True)
class ProofSeen:
    """What names a hello's proof for the one-use record, and how long it must be remembered:
    until the provider would no longer honour the proof."""

    key: str
    seconds: float


class MachineIdentity(Protocol):
    """The provider's check of a hello's identity token against the machine it launched."""

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        """Why the hello is not from the machine launched as `grant`'s subject, or None."""
        ...

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        """The hello's proof as the one-use record keeps it (computed before any check or call, so a
        replay costs nothing), or None when it carries none this provider would honour."""
        ...


class IdentityOnly(Protocol):
    """A provider whose machines dial with no credential of their own, only their identity (the pods
    of a Kubernetes agent-sandbox warm pool, dispatcher/machines/k8s/pool_bots.py): the identity
    alone says what the hello may be. No other provider has one, so everywhere else a hello without
    a credential is refused before the handshake."""

    async def grant(self, hello: Hello) -> BotGrant | str:
        """What the hello's machine is (an idle bot, or a session's), or why it is refused."""
        ...


class Unverified:
    """A provider whose machines have no identity the dispatcher can check: the credential alone
    admits (`why` is the operator's answer to "why is that safe enough here")."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return None


class NoCredentialIssued:
    """A provider that issues its machines no credential (an agent-sandbox pool's pods: one template is
    every pod's, so each bot dials with its pod's identity alone, `IdentityOnly`): a credential presented
    to it was never issued for one of its machines, so its hello is refused (`how` names how they dial)."""

    def __init__(self, how: str) -> None:
        self.how = how

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        return f"this deployment's bots hold no channel credential: {self.how}"

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return None


class OneUse:
    """`identity`'s check, preceded by the one-use record: a proof already presented at any replica
    is refused before the provider is asked (a replayed presign never reaches STS)."""

    def __init__(self, identity: MachineIdentity, seen: OneTimeUse) -> None:
        self.identity, self._seen = identity, seen

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        proof = self.identity.proof_seen(hello)
        if proof is not None and not await self._seen.first_use("identity:" + proof.key, proof.seconds):
            return "identity proof already presented (a bot sends a fresh one with every hello)"
        return await self.identity.refusal(grant, hello)

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return self.identity.proof_seen(hello)


def identity_audience(env: Mapping[str, str]) -> str | None:
    """The audience bots' identity tokens must name: the channel URL they dial (a stack sets the
    same BOT_CHANNEL_URL for the dispatcher and its bots), unless the dispatcher names it apart."""
    return setting_text(env, "BOT_IDENTITY_AUDIENCE") or setting_text(env, "BOT_CHANNEL_URL") or None
