"""`MACHINES=ecs` with `ECS_CELLS` and a bot channel: the warm reserve over the cells' accounts.

Each cell's reserve tasks are the single-account reserve's (ecs/reserve.py: `startedBy` vf-reserve,
tagged idle, re-tagged on claim), run by that cell's own provider under its assumed role. A refill
takes its token from the cells' launch buckets, which cold starts take theirs from too, only in an
open cell with room (dispatcher/machines/cell_refills.py); the reserve task is counted in that cell's
running count and room from then on. A refill that the cell answers with throttling or no room
drains the cell as a cold launch's would: no refill goes there while it is drained.

A bot's hello is checked against its task in its role's account, as a cold bot's (ecs/identity.py,
the reserve's `startedBy`). Its cell is known where it was launched, where its hello proved its task
(one cell per account), or from a listing of the cells' reserve tasks (which never moves a bot launched
or proved here: another account can run a look-alike). A claim re-tags the task in its cell, then
records the session's cell in the store (`ecs-cell:<session>`, as a cold launch does), so any
replica's look-ups meet it there; a claim that fails records nothing (its cold start may go anywhere)
and its retirement stops the task by its ARN. A cell that
does not answer its listing keeps its last counts and is shown `unreadable`, and takes only its own
warm bots with it: the reserve tasks listed are the other cells', its bots late for their hello are
stopped (`in_lost_cell`, not failures of their image) and no refill goes there until it answers, so the reserve
launches their replacements in the other cells. Its bots that did dial in stay idle: a claim that
cannot re-tag one there retires it and starts cold.
"""

from __future__ import annotations

import asyncio
import builtins
import logging

from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.cell_refills import CellRefills
from dispatcher.machines.cells import DRAIN_BASE_SECONDS
from dispatcher.machines.ecs.assume_role import AssumedRole
from dispatcher.machines.ecs.cells import EcsCellMachines
from dispatcher.machines.ecs.credentials import AwsCredentials
from dispatcher.machines.ecs.provider import EcsMachines
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.machines.ecs.settings import EcsSettings
from dispatcher.machines.recent import Recent
from dispatcher.outbound.ratelimit import Rate
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import Coordination
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.machines.ecs")


class EcsCellWarmMachines(EcsCellMachines):
    def __init__(self, settings: EcsSettings, coordination: Coordination, *, channel_url: str,
                 transport: str = "daily", own: AwsCredentials | None = None,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        self.channel_url = channel_url
        # Idle bots serve the deployment's default transport; they report its task definition, the
        # same whichever account runs them (each runs its own: ECS_CELLS `task_definition`).
        self.transport = transport
        self.bot_image = settings.task_definition_for(transport)
        self._warm: dict[str, EcsWarmMachines] = {}
        self._bot_cells: Recent[str, str] = Recent()  # bot id → its cell (launched, proved or listed here)
        # Bot id → its cell as launched here or proved by its hello (its task's account): a listing never
        # moves it, since any account's admin can run a look-alike task tagged with a bot id it has seen.
        self._sure: Recent[str, str] = Recent()
        super().__init__(settings, coordination, own=own, drain_base=drain_base)
        self.creates = CellRefills(self.cells)  # the reserve's refills: the cells' own buckets

    def _member(self, settings: EcsSettings, coordination: Coordination, credentials: AssumedRole,
                cell: str) -> EcsMachines:
        member = EcsWarmMachines(settings, channel_url=self.channel_url, transport=self.transport,
                                 coordination=coordination, credentials=credentials, cell=cell,
                                 reports=self.bot_image)
        self._warm[cell] = member
        return member

    def _task_proved(self, grant: BotGrant, task_arn: str) -> None:
        """A reserve bot's hello proved its task: its claim, wherever it dialled, goes to that cell at once."""
        if grant.kind == "idle" and (cell := self.cell_of_task(task_arn)) is not None:
            self._bot_cells[grant.subject] = cell
            self._sure[grant.subject] = cell
            self._warm[cell].task_proved(grant.subject, task_arn)

    @property
    def create_rate(self) -> Rate:
        return self.settings.run_task_rate

    def reported_image(self, image: str | None) -> str:
        """What an idle bot launched for `image` (a release's task definition, as RELEASES names it) reports."""
        return image or self.bot_image

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        cell = await self.creates.idle_turn(bot_id)
        try:
            await self._warm[cell].run_idle(bot_id, channel_token, image=image, release=release)
        except MachinesError as exc:
            self.cells.idle_gone(cell)
            if (reason := self.drain_reason(exc, cell)) is not None:
                for drained in self.drained_with(exc, cell):
                    self.cells.drain(drained, reason, exc.retry_after)
            raise
        self._bot_cells[bot_id] = self._sure[bot_id] = cell

    async def _cell_of_bot(self, bot_id: str) -> str | None:
        """The cell whose reserve task `bot_id` is: known here, else looked for cell by cell."""
        if (cell := self._bot_cells.get(bot_id)) is not None:
            return cell
        failed: MachinesError | None = None
        for cell, member in self._warm.items():
            try:
                found = await member._idle_arn(bot_id)
            except MachinesError as exc:
                log.warning("ECS cell %s did not answer a look for reserve bot %s: %s", cell, bot_id, exc)
                failed = exc
                continue
            if found is not None:
                self._bot_cells[bot_id] = cell
                return cell
        if failed is not None:
            raise failed
        return None

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        cell = await self._cell_of_bot(bot_id)
        if cell is None:
            raise MachinesError("reserve_bot_gone", f"reserve task {bot_id} is gone or already claimed")
        self._launched_elsewhere(spec, bot_id, cell, await self._recorded(spec))
        # Recorded once the task carries the session, never before: a claim whose re-tag fails leaves
        # no record, so the cold start that follows may go to any open cell, not only this one.
        result = await self._warm[cell].adopt(bot_id, spec)
        holder, _ = await self._holder(spec, cell)  # a replay anywhere meets it in this cell
        self._launched_elsewhere(spec, bot_id, cell, holder)
        self._bot_cells.pop(bot_id, None)
        self._sure.pop(bot_id, None)
        self._cell_of[spec.session_id] = cell
        self.cells.idle_claimed(cell)
        return result

    async def _recorded(self, spec: LaunchSpec) -> str | None:
        try:
            return await self._holders.held(self._holder_key + spec.session_id)
        except StoreUnavailable:
            raise self._store_unavailable() from None

    @staticmethod
    def _launched_elsewhere(spec: LaunchSpec, bot_id: str, cell: str, holder: str | None) -> None:
        """Refuses the claim when a launch of the session went to another cell first: its machine is
        there (the claim's retirement then stops this bot's task, by its ARN, whatever its tags)."""
        if holder is not None and holder != cell:
            raise MachinesError("reserve_bot_elsewhere", f"session {spec.session_id} was launched in ECS cell "
                                f"{holder}, not reserve task {bot_id}'s cell {cell}")

    async def retire(self, bot_id: str) -> None:
        cell = await self._cell_of_bot(bot_id)
        if cell is None:
            return
        await self._warm[cell].retire(bot_id)
        self._bot_cells.pop(bot_id, None)
        self._sure.pop(bot_id, None)
        self.cells.idle_gone(cell)

    async def idle_machines(self) -> builtins.list[IdleMachine]:
        """Every answering cell's reserve tasks, each cell's counted; one that does not answer is
        logged, shown `unreadable` and left out. Raises only when no cell answered."""
        found = await asyncio.gather(*(member.idle_machines() for member in self._warm.values()),
                                     return_exceptions=True)
        idle: builtins.list[IdleMachine] = []
        failures: builtins.list[MachinesError] = []
        for cell, answer in zip(self._warm, found, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, MachinesError):
                    raise answer
                log.warning("ECS cell %s: its reserve tasks could not be listed: %s", cell, answer)
                self.cells.unreadable(cell, f"its reserve tasks could not be listed ({answer.reason})")
                failures.append(answer)
                continue
            self.cells.idle_counted(cell, len(answer))
            for machine in answer:
                if machine.bot_id not in self._sure:
                    self._bot_cells[machine.bot_id] = cell
            idle += answer
        if failures and len(failures) == len(self._warm):
            raise failures[0]
        return idle

    def in_lost_cell(self, bot_id: str) -> bool:
        cell = self._bot_cells.get(bot_id)
        return cell is not None and not self.cells.readable(cell)

    def exit_detail(self, bot_id: str) -> str | None:
        """A cloud task's exit is not seen here: a bot that never dialled in is only missing."""
        return None
