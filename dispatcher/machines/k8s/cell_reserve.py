"""`MACHINES=k8s` with `K8S_CELLS` and a bot channel: the warm reserve over the cells' clusters.

Each cell's idle pods are the single cluster's reserve (k8s/reserve.py: named `vf-idle-<bot id>`, labelled
idle with their bot id, claimed by one JSON Patch that tests the labels), created by that cell's own
provider with its own token, in its own namespace. Refills, claims, look-ups, listing and a lost cell:
dispatcher/machines/cell_reserve.py, as ECS_CELLS's, GCE_CELLS's and ACI_CELLS's. A refill takes its token
from the cell's own `k8s:<cell>` bucket (the one its cold starts take from), only in an open cell with room
(an idle pod counts against the cell's `max_pods`); a create the cluster answers with a 429, a
ResourceQuota's `exceeded quota`, a refusal of the cell's token, or an API server never connected to,
is not retried there and drains the cell as a cold create's would (k8s/cells.py `drain_reason`).

A reserve bot's projected token is reviewed by one cluster only: the cell its pod was created in here,
or, at a replica that did not create it, the one cluster whose pod of that name is labelled idle with
its bot id (every cell is asked; two such cells: refused in both). Neither the token, nor the pod name
it claims, nor the hello chooses the cluster. A pod admitted there proves the bot's cell: a later
listing never moves it to another cluster's look-alike. A claimed bot that dials again names its session:
its pod is found as that session's, in the cell the store records for it (k8s/cells.py `_bot_cell`), and
is not noted as the reserve's again, so a retirement by its bot id cannot delete the session's pod. A
retirement counts the pod out of its cell only when it deleted it; a cell closed by `max_pods: 0` has its
idle pods retired by the sweep, and their bots' hellos refused meanwhile (k8s/cell_identity.py).
"""

from __future__ import annotations

from dispatcher.machines.cell_reserve import CellReserve
from dispatcher.machines.cells import DRAIN_BASE_SECONDS
from dispatcher.machines.k8s.cells import CREATE_RATE, K8sCellMachines
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.reserve import K8sWarmMachines
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination


class K8sCellWarmMachines(CellReserve, K8sCellMachines):
    def __init__(self, settings: K8sSettings, coordination: Coordination, *, channel_url: str,
                 max_idle_seconds: float, max_session_seconds: int, transport: str = "daily",
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`transport`: the one idle bots serve (the deployment's first); `max_idle_seconds`,
        `max_session_seconds`: an idle pod's life (k8s/reserve.py)."""
        self.transport = transport
        self._lifetime = (max_idle_seconds, max_session_seconds)
        self._warm = {}
        self._bot_cells = Recent()
        super().__init__(settings, coordination, channel_url=channel_url, drain_base=drain_base)
        self._start_reserve()  # the reserve's refills: the cells' own buckets (every cell runs BOT_IMAGE)

    def _member(self, settings: K8sSettings, cell: str, channel_url: str | None) -> K8sMachines:
        max_idle_seconds, max_session_seconds = self._lifetime
        member = K8sWarmMachines(settings, channel_url=channel_url, transport=self.transport, turn_away=True,
                                 max_idle_seconds=max_idle_seconds, max_session_seconds=max_session_seconds)
        self._warm[cell] = member
        return member

    async def _retire_in(self, cell: str, bot_id: str) -> bool:
        """Counted out of the cell only when this call deleted the idle pod (k8s/reserve.py `delete_idle`)."""
        member = self._warm[cell]
        if isinstance(member, K8sWarmMachines):
            return await member.delete_idle(bot_id)
        return await super()._retire_in(cell, bot_id)

    def exit_detail(self, bot_id: str) -> str | None:
        """Why the bot's idle pod ended, as its own cell's last listing read it (only a cell the bot is
        known in: another cluster's pod of that name says nothing of it)."""
        cell = self._bot_cells.get(bot_id)
        member = self._warm.get(cell) if cell is not None else None
        return member.exit_detail(bot_id) if isinstance(member, K8sWarmMachines) else None

    @property
    def create_rate(self) -> Rate:
        """One cell's pace (the cells' buckets), for the fleet planner's count of what it can create."""
        return CREATE_RATE
