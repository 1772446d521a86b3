"""`MACHINES=ecs` with `ECS_CELLS` and a bot channel: the warm reserve over the cells' accounts.

Each cell's reserve tasks are the single-account reserve's (ecs/reserve.py: `startedBy` vf-reserve,
tagged idle, re-tagged on claim), run by that cell's own provider under its assumed role. A refill
takes its token from the cells' launch buckets, which cold starts take theirs from too, only in an
open cell with room that maps the release's task definition (dispatcher/machines/cell_refills.py);
the reserve task is counted in that cell's running count and room from then on. A refill that the
cell answers with throttling or no room drains the cell as a cold launch's would: no refill goes
there while it is drained.

A bot's hello is checked against its task in its role's account, as a cold bot's (ecs/identity.py,
the reserve's `startedBy`). Its cell is known where it was launched, where its hello proved its task
(one cell per account), or from a listing of the cells' reserve tasks (which never moves a bot launched
or proved here: another account can run a look-alike). A claim re-tags the task in its cell, then
records the session's cell in the store (`ecs-cell:<session>`, as a cold launch does), so any
replica's look-ups meet it there; a claim that fails records nothing (its cold start may go anywhere)
and its retirement stops the task by its ARN, kept from the hello's proof or the claim (the claim,
look-ups and listing: dispatcher/machines/cell_reserve.py, shared with GCE_CELLS). A cell that
does not answer its listing keeps its last counts and is shown `unreadable`, and takes only its own
warm bots with it: the reserve tasks listed are the other cells', its bots late for their hello are
stopped (`in_lost_cell`, not failures of their image) and no refill goes there until it answers, so the reserve
launches their replacements in the other cells. Its bots that did dial in stay idle: a claim that
cannot re-tag one there retires it and starts cold.
"""

from __future__ import annotations

from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.cell_reserve import CellReserve
from dispatcher.machines.cells import DRAIN_BASE_SECONDS
from dispatcher.machines.ecs.assume_role import AssumedRole
from dispatcher.machines.ecs.cells import EcsCellMachines
from dispatcher.machines.ecs.credentials import AwsCredentials
from dispatcher.machines.ecs.provider import EcsMachines
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.machines.ecs.settings import EcsSettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination


class EcsCellWarmMachines(CellReserve, EcsCellMachines):
    def __init__(self, settings: EcsSettings, coordination: Coordination, *, channel_url: str,
                 transport: str = "daily", own: AwsCredentials | None = None,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        self.channel_url = channel_url
        # Idle bots serve the deployment's default transport; they report its task definition, the
        # same whichever account runs them (each runs its own: ECS_CELLS `task_definition`).
        self.transport = transport
        self.bot_image = settings.task_definition_for(transport)
        self._warm = {}
        self._bot_cells = Recent()
        super().__init__(settings, coordination, own=own, drain_base=drain_base)
        # The reserve's refills: the cells' own buckets, of the cells that map the release's task definition.
        self._start_reserve(lambda image: self.able(image, self.transport))

    def _member(self, settings: EcsSettings, coordination: Coordination, credentials: AssumedRole,
                cell: str) -> EcsMachines:
        member = EcsWarmMachines(settings, channel_url=self.channel_url, transport=self.transport,
                                 coordination=coordination, credentials=credentials, cell=cell,
                                 reports=self.bot_image)
        self._warm[cell] = member
        return member

    def _task_proved(self, grant: BotGrant, task_arn: str) -> None:
        """A reserve bot's hello proved its task: its claim, wherever it dialled, goes to that task at once."""
        if grant.kind == "idle" and (cell := self.cell_of_task(task_arn)) is not None:
            self._bot_proved(grant.subject, cell)
            if isinstance(member := self._warm[cell], EcsWarmMachines):  # every cell's is (`_member`)
                member.task_proved(grant.subject, task_arn)  # its claim and retirement: that task's ARN

    @property
    def create_rate(self) -> Rate:
        return self.settings.run_task_rate
