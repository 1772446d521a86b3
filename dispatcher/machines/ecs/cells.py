"""`MACHINES=ecs` with `ECS_CELLS`: a region's ECS launches spread over several AWS accounts.

Each cell is one account: an `EcsMachines` whose calls are signed with the keys of the role the
dispatcher assumes there (ecs/assume_role.py), with that account's cluster, task definitions and
network. Which cell a launch goes to, each cell's RunTask bucket (`ecs:<cell>`, counted once for
the deployment), and how a throttling cell is drained: dispatcher/machines/cells.py. A cell that
does not map a session's task definition of another account (ECS_CELLS `task_definitions`: a new
build's copy not registered and mapped yet) is passed over in the session's cell order, never
drained, so its other releases' sessions still go there; with no cell mapping it, the start fails
`release_image_missing` naming the task definition and the cells, and nothing is sent. A cell whose
RunTask answers ThrottlingException, or places no task for a quota or capacity reason, turns the
launch away at once, and the launch goes on to the next open cell in the session's order.

How a session's launch is recorded in the store before its RunTask (`ecs-cell:<session>`), looked
for and listed over the accounts: dispatcher/machines/cell_launches.py. A cell turns a launch away
(and lets its record go) only when no attempt there may have made the task (provider.py
`_run_in_cell`). With a bot channel the warm reserve runs over the cells too: ecs/cell_reserve.py.
"""

from __future__ import annotations

import builtins
import logging
import re
import socket
from typing import Any

from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.cell_launches import CellLaunches
from dispatcher.machines.cells import DRAIN_BASE_SECONDS, Cells, CellTurnedAway
from dispatcher.machines.ecs.assume_role import AssumedRole
from dispatcher.machines.ecs.cell_settings import other_account
from dispatcher.machines.ecs.credentials import AwsCredentials
from dispatcher.machines.ecs.identity import EcsTaskIdentity
from dispatcher.machines.ecs.provider import RESERVE_STARTED_BY, EcsMachines
from dispatcher.machines.ecs.settings import EcsSettings, sts_endpoint
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.retry import Backoff
from dispatcher.store.coordination import Coordination

log = logging.getLogger("dispatcher.machines.ecs")
ASSUME_BACKOFF = Backoff(attempts=4, base=0.3, cap=2.0, deadline=8.0)


def session_name(host: str | None = None) -> str:
    """The STS session the dispatcher's calls in a cell's account are made under (CloudTrail shows
    it): `voicefleet-dispatcher-<host>`, the host being this replica's task or pod."""
    host = re.sub(r"[^\w+=,.@-]", "-", host if host is not None else socket.gethostname(), flags=re.ASCII)
    return f"voicefleet-dispatcher-{host}"[:64]


class EcsCellMachines(CellLaunches[EcsMachines]):
    name, label, setting, thing = "ecs", "ECS", "ECS_CELLS", "task"

    def __init__(self, settings: EcsSettings, coordination: Coordination, *, own: AwsCredentials | None = None,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`own`: the dispatcher's keys, which assume each cell's role (None: the credential chain);
        `drain_base`: a throttling cell's first backoff (dispatcher/machines/cells.py)."""
        if not settings.cells:
            raise ValueError("EcsCellMachines needs ECS_CELLS")
        self.settings = settings
        self._account = {cell.name: cell.account for cell in settings.cells}
        self._own = own or AwsCredentials()
        sts = settings.sts_endpoint_url or sts_endpoint({}, settings.region)
        self._roles = {cell.name: AssumedRole(
            role_arn=cell.role_arn, session_name=session_name(), external_id=cell.external_id, endpoint=sts,
            region=settings.region, source=self._own, timeout=settings.read_timeout,
            connect_timeout=settings.connect_timeout, backoff=ASSUME_BACKOFF) for cell in settings.cells}
        members = {cell.name: self._member(settings.for_cell(cell), coordination, self._roles[cell.name], cell.name)
                   for cell in settings.cells}
        cells = Cells(self.name, coordination, settings.run_task_rate, tuple(members),
                      room={cell.name: cell.max_tasks for cell in settings.cells}, drain_base=drain_base)
        super().__init__(members, cells, coordination, settings.poll_seconds)
        clusters = tuple(member.settings.cluster for member in self._members.values())
        self.identity = EcsTaskIdentity(
            region=settings.region, cluster=clusters[0], clusters=clusters,
            container=settings.container_name, endpoint=sts, roles=settings.bot_task_roles, describe=self._describe_in,
            reserve_marker=RESERVE_STARTED_BY, audience=settings.identity_audience, verified=self._task_proved)

    def _member(self, settings: EcsSettings, coordination: Coordination, credentials: AssumedRole,
                cell: str) -> EcsMachines:
        """One cell's own provider (ecs/cell_reserve.py: one that holds reserve tasks too)."""
        return EcsMachines(settings, coordination, credentials=credentials, cell=cell)

    def _task_proved(self, grant: BotGrant, task_arn: str) -> None:
        """A bot's hello proved its task (`task_arn`): nothing to note for cold sessions, whose records
        name their cells (ecs/cell_reserve.py notes a reserve bot's)."""

    def cell_of_task(self, task_arn: str) -> str | None:
        """The cell a task runs in: its account's (one cell per account)."""
        account = task_arn.split(":")[4:5]
        return next((cell.name for cell in self.settings.cells if [cell.account] == account), None)

    async def run_in(self, cell: str, spec: LaunchSpec, *, turn_away: bool) -> LaunchResult:
        # RunTask's clientToken is the session's: a replay in the same cell meets its task
        return await self._members[cell].run(spec, turn_away=turn_away)

    def drain_reason(self, exc: MachinesError, cell: str) -> str | None:
        return _drain_reason(exc, cell)

    def sent(self, cell: str, image: str | None, transport: str | None = None) -> str:
        """The task definition `cell`'s RunTask is sent for a release's `image` (None: the deployment's
        own, for `transport`): that account's copy where the cell maps one."""
        settings = self._members[cell].settings
        return settings.release_task_definition(image) if image else settings.task_definition_for(transport)

    def able(self, image: str | None, transport: str | None = None) -> tuple[str, ...]:
        """The cells that can run `image` (`sent`): not those that would be sent another account's ARN."""
        return tuple(cell.name for cell in self.settings.cells
                     if other_account(self.sent(cell.name, image, transport), cell.account) is None)

    def passed_over(self, spec: LaunchSpec) -> list[str]:
        """The cells that do not map the session's task definition of another account: its launch goes
        to the others, and they stay open for the releases they map."""
        able = self.able(spec.image, spec.transport)
        return [cell for cell in self._members if cell not in able]

    def lacking_everywhere(self, spec: LaunchSpec, cells: list[str], exc: MachinesError | None) -> MachinesError:
        """No cell maps the session's task definition: name it, the cells and what to do."""
        named = spec.image or self.settings.task_definition_for(spec.transport)
        accounts = ", ".join(f"{cell} (account {self._account[cell]})" for cell in cells)
        return ReleaseImageMissing(
            spec.release, "ECS", f"task definition {named} is another account's and none of the cells {accounts} "
            "maps its copy in ECS_CELLS \"task_definitions\"",
            remedy="register its task definition in each cell's account and map it in that cell's "
                   "\"task_definitions\" (ecsCells), as docs/operations.md says (Setting up ECS cells)")

    async def _describe_in(self, task_ids: builtins.list[str], account: str) -> builtins.list[dict[str, Any]]:
        """DescribeTasks in the cells of `account` alone (a bot's task is in its role's account)."""
        cells = [cell.name for cell in self.settings.cells if cell.account == account]
        return [task for cell in cells for task in await self._members[cell]._describe(task_ids)]

    async def aclose(self) -> None:
        await super().aclose()
        for role in self._roles.values():
            await role.aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: a cell's task finds the channel in its environment overrides, as ecs's."""


def _drain_reason(exc: MachinesError, cell: str) -> str | None:
    """Why a launch's failure drains its cell (None: it does not): throttling, or no room, said by
    its code alone; a role or permissions refused (the operator's to fix; AWS's words, naming
    accounts and ARNs, stay in the log: the reason reaches callers)."""
    if isinstance(exc, CellTurnedAway):
        return exc.message
    if exc.reason == "ecs_throttled":  # the last open cell, still throttling after its retries
        return exc.message.rsplit(": ", 1)[-1]
    if exc.reason == "ecs_unauthorized":
        log.warning("ECS cell %s drained: %s", cell, exc.message)
        return "its role or permissions were refused (the dispatcher's log says how)"
    return None
