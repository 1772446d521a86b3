"""`MACHINES=gce` with `GCE_CELLS` and a bot channel: the warm reserve over the cells' projects.

Each cell's reserve VMs are the single-project reserve's (gce/reserve.py: named `<prefix>-idle-<bot
id>`, labelled idle, relabelled with the session on claim), inserted by that cell's own provider from
its project's template. Refills, claims, look-ups, listing and a lost cell: dispatcher/machines/
cell_reserve.py, as ECS_CELLS's. A reserve insert that the project refuses for its rate or a quota
drains the cells that refusal holds for, as a cold insert's would (gce/cells.py `drained_with`).

A reserve bot's instance identity token must name the project and zone of the cell its VM is in:
the cell it was inserted in here, or the one project whose idle VM of that name is labelled with its
bot id (never read from the token or the VM's name; two such projects: refused). A token that names
it proves the VM there: a later listing never moves the bot to another project's look-alike VM. Once
claimed, a bot that dials again names its session: its VM is found as the session's (gce/cells.py
`_located`) and is not noted as the reserve's again.
"""

from __future__ import annotations

from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.cell_reserve import CellReserve
from dispatcher.machines.cells import DRAIN_BASE_SECONDS
from dispatcher.machines.gce.cells import GceCellMachines
from dispatcher.machines.gce.provider import GceMachines
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.machines.gce.settings import GceSettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination


class GceCellWarmMachines(CellReserve, GceCellMachines):
    def __init__(self, settings: GceSettings, coordination: Coordination, *, max_idle_seconds: float,
                 max_session_seconds: int, drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`max_idle_seconds`, `max_session_seconds`: a reserve VM's life (gce/reserve.py)."""
        self._lifetime = (max_idle_seconds, max_session_seconds)
        # Idle bots report the deployment's template (GCE_PROJECT's), whichever project inserts them
        # from its own copy: a claim compares the hello's image with it.
        self.bot_image = settings.template_path
        self._warm = {}
        self._bot_cells = Recent()
        super().__init__(settings, coordination, drain_base=drain_base)
        self._start_reserve()  # the reserve's refills: the cells' own buckets

    def _member(self, settings: GceSettings, coordination: Coordination, cell: str) -> GceMachines:
        max_idle_seconds, max_session_seconds = self._lifetime
        member = GceWarmMachines(settings, max_idle_seconds=max_idle_seconds, max_session_seconds=max_session_seconds,
                                 coordination=coordination, auth=self._auth, reports=self.bot_image)
        self._warm[cell] = member
        return member

    def _vm_proved(self, grant: BotGrant, session_id: str | None, where: tuple[str, str]) -> None:
        """An idle reserve bot's token proved its VM in `where`'s cell (one cell per project and zone): its
        claim, wherever it dialled, goes there. A claimed bot dialling again (its hello names its session)
        is no longer the reserve's: noting it would let a retirement by bot id delete its session's VM."""
        cell = next((name for name, at in self._where.items() if at == where), None)
        if grant.kind == "idle" and session_id is None and cell is not None:
            self._bot_proved(grant.subject, cell)

    @property
    def create_rate(self) -> Rate:
        return self.settings.insert_rate
