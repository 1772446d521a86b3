"""`MACHINES=aci` with `ACI_CELLS`: a deployment's container groups spread over several Azure subscriptions.

ACI allows about 100 creates per 5 minutes and 300 an hour per subscription and region, and ARM's
read and write buckets are the subscription's too (aci/settings.py): each cell is one subscription's
resource group in a location, an `AciMachines` of that resource group whose create, write and read
budgets are its own (`aci:<cell>`, `aci-write:<cell>`, `aci-read:<cell>`, counted once for the
deployment), signed in as the dispatcher's identity (or the cell's `client_id`), which holds a role on
that resource group alone. Which cell a session's group goes to and how a throttling cell is drained:
dispatcher/machines/cells.py; the record of a session's cell in the store before its PUT, look-ups,
stops and listing over the subscriptions: dispatcher/machines/cell_launches.py.

A launch reads the session's group in its cell first (a retry at any replica meets it), and a cell
turns the launch away to another only when its own answer refused the create and nothing was made:
a 429 (the subscription's write bucket, or ACI's create budget), a quota (`ContainerGroupQuotaReached`,
`StandardCoresQuotaReached`…), or its role refused (403: the dispatcher's token is the tenant's, the
grant is each resource group's), or its own `client_id` refused at sign-in (the dispatcher's shared
identity refused is every cell's failure: it drains none). A PUT whose answer was lost stays in its
cell, looked for there (machines/lost_creates.py). A bot's hello is admitted while ARM shows its
group in the cell the store records for its session (aci/identity.py). The warm reserve does not run over cells yet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dispatcher.channel.access import ChannelAccess
from dispatcher.machines.aci.auth import ArmToken, NoArmToken
from dispatcher.machines.aci.groups import IDLE_INFIX
from dispatcher.machines.aci.identity import AciGroupIdentity
from dispatcher.machines.aci.provider import BOT_CHANNEL_URL, AciMachines, arm_token, bot_env_from, bot_secrets_from
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.cell_launches import CellLaunches
from dispatcher.machines.cells import DRAIN_BASE_SECONDS, Cells, CellTurnedAway
from dispatcher.store.coordination import Coordination

log = logging.getLogger("dispatcher.machines.aci")


class AciCellMachines(CellLaunches[AciMachines]):
    name, label, setting, thing = "aci", "ACI", "ACI_CELLS", "container group"

    def __init__(self, settings: AciSettings, coordination: Coordination, env: Mapping[str, str], *,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`env`: the dispatcher's environment (its sign-in, the bots' keys); `drain_base`: a throttling
        cell's first backoff (dispatcher/machines/cells.py)."""
        if not settings.cells:
            raise ValueError("AciCellMachines needs ACI_CELLS")
        self.settings = settings
        self.bot_image = settings.bot_image
        secrets = bot_secrets_from(settings, env)  # read once from Key Vault, shared by every cell
        tokens: dict[str, ArmToken] = {}  # one sign-in per identity: cells of one identity share its token
        members = {}
        for cell in settings.cells:
            own = settings.for_cell(cell)
            token = tokens.setdefault(own.client_id, arm_token(own, env))
            members[cell.name] = AciMachines(own, coordination, token=_Shared(token),
                                             channel_url=env.get(BOT_CHANNEL_URL, "").strip() or None,
                                             bot_env=bot_env_from(env), bot_secrets=secrets, cell=cell.name)
        self._tokens = tuple(tokens.values())
        shared = env.get("AZURE_CLIENT_ID", "").strip()  # the dispatcher's own identity: every cell's failure
        self._own_identity = {cell.name for cell in settings.cells if cell.client_id and cell.client_id != shared}
        cells = Cells(self.name, coordination, settings.create_rate, tuple(members),
                      room={cell.name: cell.max_groups for cell in settings.cells}, drain_base=drain_base)
        super().__init__(members, cells, coordination, settings.poll_seconds)
        self.identity = AciGroupIdentity(self._group_of, settings.prefix)

    async def run_in(self, cell: str, spec: LaunchSpec, *, turn_away: bool) -> LaunchResult:
        member = self._members[cell]
        try:
            return await member.run_session(spec, turn_away=turn_away)
        except CellTurnedAway as exc:
            log.warning("ACI cell %s refused a launch: %s", cell, exc.message)
            raise

    def drain_reason(self, exc: MachinesError, cell: str) -> str | None:
        """Only the cell's own refusal that made nothing: never a lost answer (`aci_unavailable`), nor
        the dispatcher's own sign-in (`nothing_sent`, or its shared identity's: the same for every cell).
        A cell's own `client_id` refused at sign-in is that cell's alone."""
        if isinstance(exc, CellTurnedAway):
            return exc.message
        if isinstance(exc, NoArmToken):
            if cell not in self._own_identity:
                return None
            log.warning("ACI cell %s drained: its client_id could not sign in: %s", cell, exc.message)
            return "its client_id could not sign in (the dispatcher's log says how)"
        if exc.nothing_sent:
            return None
        if exc.reason == "aci_throttled":  # the last open cell, still throttled after its retries
            return "SubscriptionRequestsThrottled"
        if exc.reason == "aci_capacity":
            return "a container group or cores quota"
        # ARM's 403 (`AuthorizationFailed`, `LinkedAuthorizationFailed`: a subnet's join): this resource group
        # refused the dispatcher's role. A 401, or no token at all, is the dispatcher's own sign-in: every cell's.
        if exc.reason == "aci_unauthorized" and "AuthorizationFailed" in exc.message:
            log.warning("ACI cell %s drained: %s", cell, exc.message)
            return "its role was refused (the dispatcher's log says how)"
        return None

    async def _group_of(self, name: str) -> dict[str, Any] | None:
        """The group a bot's credential names, read in its session's cell (the store's record), and
        only there: a group of that name in another subscription is not the bot's."""
        session = name.removeprefix(f"{self.settings.prefix}-")
        if session.startswith(IDLE_INFIX):
            return None  # no reserve over cells: an idle bot's credential names no group here
        found = await self.find(session)
        if found is None:
            return None
        return await self._members[found[0]].group(name)

    async def aclose(self) -> None:
        await super().aclose()
        for token in self._tokens:  # the members closed the rest (the bot secrets' client is closed once)
            await token.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: the channel's URL is the deployment's, sent with each group, as aci's."""


class _Shared:
    """A sign-in several cells share: each member's `aclose` leaves it open (the cells close it once)."""

    def __init__(self, token: ArmToken) -> None:
        self._token = token

    async def headers(self) -> dict[str, str]:
        return await self._token.headers()

    async def aclose(self) -> None:
        return None
