"""`MACHINES=aci` with `ACI_CELLS`: a deployment's container groups spread over several Azure subscriptions.

ACI allows about 100 creates per 5 minutes and 300 an hour per subscription and region, and ARM's
read and write buckets are the subscription's too (aci/settings.py): each cell is one subscription's
resource group in a location, an `AciMachines` of that resource group whose create, write and read
budgets are its own (`aci:<cell>`, `aci-write:<cell>`, `aci-read:<cell>`, counted once for the
deployment; the create budget at the cell's own `create_rate` and `create_burst` where it sets them),
signed in as the dispatcher's identity (or the cell's `client_id`), which holds a role on
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
group in the cell the store records for its session (aci/identity.py). With a bot channel the warm
reserve runs over the cells too: aci/cell_reserve.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.aci.auth import ArmToken, NoArmToken
from dispatcher.machines.aci.groups import IDLE_INFIX, SESSION_ID
from dispatcher.machines.aci.identity import AciGroupIdentity
from dispatcher.machines.aci.provider import BOT_CHANNEL_URL, AciMachines, arm_token, bot_env_from, bot_secrets_from
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.cell_launches import CellLaunches
from dispatcher.machines.cells import DRAIN_BASE_SECONDS, Cells, CellTurnedAway
from dispatcher.recent import Recent
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
            members[cell.name] = self._member(own, coordination, cell.name, token=_Shared(token),
                                              channel_url=env.get(BOT_CHANNEL_URL, "").strip() or None,
                                              bot_env=bot_env_from(env), bot_secrets=secrets)
        self._tokens = tuple(tokens.values())
        shared = env.get("AZURE_CLIENT_ID", "").strip()  # the dispatcher's own identity: every cell's failure
        self._own_identity = {cell.name for cell in settings.cells if cell.client_id and cell.client_id != shared}
        # Each cell's bucket at its own budget, as its member's creates and deletes count it (`for_cell`).
        cells = Cells(self.name, coordination, settings.create_rate, tuple(members),
                      room={cell.name: cell.max_groups for cell in settings.cells}, drain_base=drain_base,
                      rates=settings.cell_create_rates())
        super().__init__(members, cells, coordination, settings.poll_seconds)
        self._found_in: Recent[str, str] = Recent()  # an idle group's name → the cell its bot's hello found it in
        self.identity = AciGroupIdentity(self._group_of, settings.prefix, proved=self._group_proved)

    def _member(self, settings: AciSettings, coordination: Coordination, cell: str, **kw: Any) -> AciMachines:
        """One cell's own provider (aci/cell_reserve.py: one that holds reserve groups too)."""
        return AciMachines(settings, coordination, cell=cell, **kw)

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

    async def _group_of(self, name: str, session_id: str | None) -> dict[str, Any] | None:
        """The group a bot's credential names, read in its own cell alone: a group of that name in
        another subscription is not the bot's. A session's: the cell the store records for it. An idle
        reserve bot's: the cell it was launched or proved in, else the one holding it idle
        (`_idle_cell`). A claimed reserve bot dialling again (its hello names its session): the claim
        took its idle tag, so its group is found as that session's and must be the one named for it."""
        named = name.removeprefix(f"{self.settings.prefix}-")
        if not named.startswith(IDLE_INFIX):
            found = await self.find(named)
            cell = found[0] if found is not None else None
        elif session_id is None:
            cell = await self._idle_cell(named.removeprefix(IDLE_INFIX))
        else:
            cell = await self._claimed_cell(name, session_id)
        if cell is None:
            return None
        group = await self._members[cell].group(name)
        if group is not None and session_id is None and named.startswith(IDLE_INFIX):
            self._found_in[name] = cell
        return group

    async def _claimed_cell(self, name: str, session_id: str) -> str | None:
        """The cell of the session's group when it is reserve group `name` (claimed for it). A session
        id not of the dispatcher's form names no group, and is never sent to ARM."""
        if SESSION_ID.fullmatch(session_id) is None:
            return None
        found = await self.find(session_id)
        return found[0] if found is not None and found[1].machine_id == name else None

    async def _idle_cell(self, bot_id: str) -> str | None:
        """The cell of reserve bot `bot_id`'s group: none without a reserve (aci/cell_reserve.py finds it)."""
        return None

    def _group_proved(self, grant: BotGrant, session_id: str | None) -> None:
        """A bot's group was admitted: only an idle reserve bot's cell is noted (aci/cell_reserve.py);
        a claimed one dialling again is the session's now."""
        if grant.kind == "idle" and session_id is None and (cell := self._found_in.pop(
                self.identity.group_for(grant), None)) is not None:
            self._idle_proved(grant.subject, cell)

    def _idle_proved(self, bot_id: str, cell: str) -> None:
        """Nothing to note without a reserve (aci/cell_reserve.py fixes the bot's cell)."""

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
