"""An ACI bot's hello is admitted only while ARM shows the container group launched for its credential.

ACI gives no per-dial identity token the channel could check as it does Compute Engine's or Fly's:
a group's managed identity token is an Entra access token for a registered resource (no channel
URL as audience, no per-dial nonce), lives up to 24 h and is cached by the token endpoint, so each
re-dial would present the same one and the one-use record would refuse the bot's own reconnects.
What the other providers' tokens defend against does not exist here: the credential travels as a
`secureValue`, which ARM never returns (Reader sees the group, not its values), so it is readable
only inside the group (or by whoever may `exec` into it, who could be the bot anyway). The check
binds the credential to its group through ARM: the group named for the grant (`<prefix>-<session>`,
or `<prefix>-idle-<bot id>`) must exist, must not have ended, and must carry the grant's session or
bot id in its tags. A credential of a deleted group admits nothing, and group names are unique in the
resource group while the group exists (a session id is never reused). With ACI_CELLS the group is read
in its own cell's subscription alone (aci/cells.py `_group_of`: a group of that name elsewhere is not
the bot's), and a reserve bot's group admitted there is told to `proved` (aci/cell_reserve.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import ProofSeen
from dispatcher.machines.aci.groups import IDLE_INFIX, TAG_IDLE, TAG_SESSION, to_machine
from dispatcher.machines.base import MachinesError

# A group's name and the session the bot's hello names (a claimed reserve bot's re-dial) → the group, or None
GroupOf = Callable[[str, str | None], Awaitable[dict[str, Any] | None]]
Proved = Callable[[BotGrant, str | None], None]  # a grant's group admitted, its hello naming that session


class AciGroupIdentity:
    def __init__(self, get: GroupOf, prefix: str, *, proved: Proved | None = None) -> None:
        self._get, self._prefix, self._proved = get, prefix, proved

    def group_for(self, grant: BotGrant) -> str:
        infix = IDLE_INFIX if grant.kind == "idle" else ""
        return f"{self._prefix}-{infix}{grant.subject}"

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        name = self.group_for(grant)
        try:
            group = await self._get(name, hello.session_id)
        except MachinesError as exc:
            return f"ARM did not answer for container group {name} ({exc.reason})"
        if group is None:
            return f"no container group {name}: the credential's group is gone or was never launched"
        tags = group.get("tags") or {}
        tag = TAG_IDLE if grant.kind == "idle" else TAG_SESSION
        # A claimed reserve group has traded its idle tag for the session's: the bot keeps its grant.
        if tags.get(tag) != grant.subject and not (grant.kind == "idle" and TAG_SESSION in tags):
            return f"container group {name} is not tagged {tag}={grant.subject}"
        if not to_machine(group).state.is_active:
            return f"container group {name} has ended"
        if self._proved is not None:
            self._proved(grant, hello.session_id)
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return None  # nothing the bot presents: the check is ARM's word on the group

    async def aclose(self) -> None:
        """Nothing of its own to close: ARM calls go through the provider's client."""
