"""`MACHINES=aci` with `ACI_CELLS` and a bot channel: the warm reserve over the cells' subscriptions.

Each cell's reserve groups are the single-subscription reserve's (aci/reserve.py: named `<prefix>-idle-
<bot id>`, tagged idle, re-tagged with the session on claim by ARM's tags-only PATCH), PUT by that
cell's own provider in its resource group, signed in as that cell's identity. Refills, claims,
look-ups, listing and a lost cell: dispatcher/machines/cell_reserve.py, as ECS_CELLS's and GCE_CELLS's.
A refill takes its token from the cell's own `aci:<cell>` bucket (the one its cold starts and deletes
take from); a reserve PUT the subscription answers with a 429 or a quota is not retried there and
drains the cell as a cold launch's would (aci/cells.py `drain_reason`), and so does its role refused.

A reserve bot's hello is admitted while ARM shows its idle group in its own cell's subscription: the
cell it was launched in here, or, at a replica that did not launch it, the one cell whose group of that
name is tagged idle with its bot id (every cell is asked; two such cells: refused in both). A group
admitted there proves the bot's cell: a later listing never moves it to another subscription's look-
alike. A claimed bot that dials again names its session: its group is found as that session's, in the
cell the store records for it (aci/cells.py `_group_of`), and is not noted as the reserve's again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.machines.aci.cells import AciCellMachines
from dispatcher.machines.aci.provider import AciMachines
from dispatcher.machines.aci.reserve import AciWarmMachines
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.cell_reserve import CellReserve
from dispatcher.machines.cells import DRAIN_BASE_SECONDS
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination


class AciCellWarmMachines(CellReserve, AciCellMachines):
    def __init__(self, settings: AciSettings, coordination: Coordination, env: Mapping[str, str], *,
                 transport: str = "daily", drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`transport`: the one idle bots serve (the deployment's first), whose image they report, the
        same in every cell (aci/reserve.py)."""
        self.transport = transport
        self._warm = {}
        self._bot_cells = Recent()
        super().__init__(settings, coordination, env, drain_base=drain_base)
        self.bot_image = settings.image_for(transport)
        self._start_reserve()  # the reserve's refills: the cells' own buckets

    def _member(self, settings: AciSettings, coordination: Coordination, cell: str, **kw: Any) -> AciMachines:
        member = AciWarmMachines(settings, coordination, cell=cell, transport=self.transport, **kw)
        self._warm[cell] = member
        return member

    @property
    def create_rate(self) -> Rate:
        """The slowest cell's budget, for the fleet planner's count of what it can create (dispatcher/reserve/
        frozen.py `tiers_of`): one cell's, as the other providers over cells give, never more than any makes."""
        return min(self.settings.cell_create_rates().values(), key=lambda rate: rate.per_second)
