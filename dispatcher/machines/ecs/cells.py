"""`MACHINES=ecs` with `ECS_CELLS`: a region's ECS launches spread over several AWS accounts.

Each cell is one account: an `EcsMachines` whose calls are signed with the keys of the role the
dispatcher assumes there (ecs/assume_role.py), with that account's cluster, task definitions and
network. Which cell a launch goes to, each cell's RunTask bucket (`ecs:<cell>`, counted once for
the deployment), and how a throttling cell is drained: dispatcher/machines/cells.py. A cell whose
RunTask answers ThrottlingException, or places no task for a quota or capacity reason, turns the
launch away at once, and the launch goes on to the next open cell in the session's order.

A session's launch is recorded in the store before its RunTask (`FirstClaims`, `ecs-cell:<session>`),
so a replay at any replica meets the cell it went to, even after a drain sent it off its home cell
(a stable hash of its id); a cell that turns it away lets the record go, but only when no attempt
there may have made the task (provider.py `_run_in_cell`). A session's machine is looked for in the
cell its record names, and only there (a cell that does not answer then makes the look a 503, never
a "not found" that would launch it twice); without a record, in the cell this replica launched it
in and its home cell. One cell that does not answer its reads is skipped by the listing (shown on
`/status`), so the others' starts, counts and reaping go on. The warm reserve does not run over
cells yet: bots dial in for cold sessions only.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import re
import socket
from typing import Any

from dispatcher.channel.access import ChannelAccess
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError
from dispatcher.machines.cells import DRAIN_BASE_SECONDS, Cells, CellTurnedAway, CellView, PartialListing
from dispatcher.machines.ecs.assume_role import AssumedRole
from dispatcher.machines.ecs.credentials import AwsCredentials
from dispatcher.machines.ecs.identity import EcsTaskIdentity
from dispatcher.machines.ecs.provider import RESERVE_STARTED_BY, EcsMachines
from dispatcher.machines.ecs.settings import EcsSettings, sts_endpoint
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.machines.polling import poll_until_started
from dispatcher.machines.recent import Recent
from dispatcher.outbound.retry import Backoff
from dispatcher.store.coordination import Coordination
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.machines.ecs")
HOLDER = "ecs-cell:"  # + session id: the cell its launch went to (`FirstClaims`)
HOLD_MARGIN = 600  # seconds a record outlives the session's longest life: a late replay still finds it
ASSUME_BACKOFF = Backoff(attempts=4, base=0.3, cap=2.0, deadline=8.0)


def session_name(host: str | None = None) -> str:
    """The STS session the dispatcher's calls in a cell's account are made under (CloudTrail shows
    it): `voicefleet-dispatcher-<host>`, the host being this replica's task or pod."""
    host = re.sub(r"[^\w+=,.@-]", "-", host if host is not None else socket.gethostname(), flags=re.ASCII)
    return f"voicefleet-dispatcher-{host}"[:64]


class EcsCellMachines:
    name = "ecs"

    def __init__(self, settings: EcsSettings, coordination: Coordination, *, own: AwsCredentials | None = None,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`own`: the dispatcher's keys, which assume each cell's role (None: the credential chain);
        `drain_base`: a throttling cell's first backoff (dispatcher/machines/cells.py)."""
        if not settings.cells:
            raise ValueError("EcsCellMachines needs ECS_CELLS")
        self.settings = settings
        self._own = own or AwsCredentials()
        sts = settings.sts_endpoint_url or sts_endpoint({}, settings.region)
        self._roles = {cell.name: AssumedRole(
            role_arn=cell.role_arn, session_name=session_name(), external_id=cell.external_id, endpoint=sts,
            region=settings.region, source=self._own, timeout=settings.read_timeout,
            connect_timeout=settings.connect_timeout, backoff=ASSUME_BACKOFF) for cell in settings.cells}
        self._members = {cell.name: EcsMachines(settings.for_cell(cell), coordination,
                                                credentials=self._roles[cell.name], cell=cell.name)
                         for cell in settings.cells}
        self.cells = Cells(self.name, coordination, settings.run_task_rate, tuple(self._members),
                           room={cell.name: cell.max_tasks for cell in settings.cells}, drain_base=drain_base)
        self._cell_of: Recent[str, str] = Recent()  # session id → the cell its machine was launched in here
        self._holders = coordination.key_holders
        self.lost = LostCreates(self.status, self.stop)
        clusters = tuple(member.settings.cluster for member in self._members.values())
        self.identity = EcsTaskIdentity(
            region=settings.region, cluster=clusters[0], clusters=clusters,
            container=settings.container_name, endpoint=sts, roles=settings.bot_task_roles, describe=self._describe_in,
            reserve_marker=RESERVE_STARTED_BY, audience=settings.identity_audience)

    def views(self) -> list[CellView]:
        return self.cells.views()

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        tried: list[str] = []
        while True:  # at most once per cell: each one that turns the launch away is not tried again
            cell = await self.cells.cold_turn(spec.session_id, tried=tried, prefer=self._cell_of.get(spec.session_id))
            holder = await self._holder(spec, cell)
            elsewhere = [c for c in self.cells.order(spec.session_id) if c not in (*tried, holder) and not
                         self.cells.drained(c)]
            try:  # with nowhere else to go (or its task already there), a throttled RunTask is retried here
                result = await self._members[holder].run(spec, turn_away=holder == cell and bool(elsewhere))
            except MachinesError as exc:
                if (reason := _drain_reason(exc, holder)) is None:
                    raise
                turned = exc
            else:
                self._cell_of[spec.session_id] = holder
                if result.created:
                    self.cells.launched(holder)
                return result
            self.cells.drain(holder, reason, turned.retry_after)
            if holder != cell:  # an earlier launch of the session went there: its task may be there
                raise turned
            await self._let_go(spec, cell)  # nothing was made: a replay may go elsewhere
            tried.append(cell)

    async def _holder(self, spec: LaunchSpec, cell: str) -> str:
        """The cell the session's launch goes to: `cell`, unless an earlier launch of it (a replay, at
        any replica) went elsewhere first, recorded in the store. ECS's idempotency token is per
        cluster, so a replay sent to another cell would make a second task."""
        try:
            holder = await self._holders.first(HOLDER + spec.session_id, cell, spec.max_session_seconds + HOLD_MARGIN)
        except StoreUnavailable:
            raise _store_unavailable() from None
        self._member(spec.session_id, holder)  # a cell no longer listed: refused, never launched elsewhere
        return holder

    def _member(self, session_id: str, cell: str) -> EcsMachines:
        if (member := self._members.get(cell)) is not None:
            return member
        raise _removed(session_id, cell)

    async def _let_go(self, spec: LaunchSpec, cell: str) -> None:
        with contextlib.suppress(StoreUnavailable):  # kept at worst: a replay goes to that cell again
            await self._holders.let_go(HOLDER + spec.session_id, cell)

    async def status(self, session_id: str) -> Machine | None:
        found = await self._find(session_id)
        return found[1] if found is not None else None

    async def _find(self, session_id: str) -> tuple[str, Machine] | None:
        """The session's machine and its cell. Its recorded cell is asked alone: a launch goes there
        only, so its answer is the answer (and one that fails is a 503, never a wrong "not found").
        Without a record, nothing was launched since its record ran out: this replica's and the home
        cell are asked. The store out of reach: every cell, and none found while one did not answer is a 503."""
        near = [self._cell_of.get(session_id), self.cells.home(session_id)]
        try:
            recorded, store_down = await self._holders.held(HOLDER + session_id), False
        except StoreUnavailable:
            recorded, store_down = None, True
        cells = [recorded] if recorded is not None else [*near, *self._members] if store_down else near
        failed: tuple[str, MachinesError] | None = None
        for cell in dict.fromkeys(c for c in cells if c is not None):
            member = self._member(session_id, cell)  # a recorded cell no longer listed: refused
            try:
                machine = await member.status(session_id)
            except MachinesError as exc:
                if cell == recorded:
                    raise _unknown(session_id, f"ECS cell {cell}", exc) from None
                log.warning("ECS cell %s did not answer a look for session %s: %s", cell, session_id, exc)
                failed = cell, exc
                continue
            if machine is not None:
                self._cell_of[session_id] = cell
                return cell, machine
        if failed is not None and store_down:  # nothing can say where it is
            raise _unknown(session_id, f"the store and ECS cell {failed[0]}", failed[1])
        return None

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self.settings.poll_seconds)

    async def stop(self, session_id: str) -> bool:
        found = await self._find(session_id)
        if found is None:
            return False
        cell, machine = found
        stopped = await self._members[cell].stop(session_id)
        if machine.state.is_active:
            self.cells.ended(cell)  # counted out now, not at the next list
        return stopped

    async def list(self) -> list[Machine]:
        """Every cell's machines; a cell that does not answer is logged, shown on `/status` and left
        out (its running count the last one read; the listing a `PartialListing`), so one account's
        outage stops nobody else's starts or reaping. Raises only when no cell answered."""
        found = await asyncio.gather(*(member.list() for member in self._members.values()), return_exceptions=True)
        machines: list[Machine] = []
        for cell, answer in zip(self._members, found, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, MachinesError):
                    raise answer
                log.warning("ECS cell %s could not be listed: %s", cell, answer)
                self.cells.unreadable(cell, f"its tasks could not be listed ({answer.reason})")
                continue
            self.cells.counted(cell, sum(m.state.is_active for m in answer))
            machines += answer
        missing = tuple(cell for cell, answer in zip(self._members, found, strict=True)
                        if isinstance(answer, BaseException))
        if len(missing) == len(self._members):
            raise next(a for a in found if isinstance(a, MachinesError))
        return PartialListing(machines, missing) if missing else machines

    async def _describe_in(self, task_ids: builtins.list[str], account: str) -> builtins.list[dict[str, Any]]:
        """DescribeTasks in the cells of `account` alone (a bot's task is in its role's account)."""
        cells = [cell.name for cell in self.settings.cells if cell.account == account]
        return [task for cell in cells for task in await self._members[cell]._describe(task_ids)]

    async def aclose(self) -> None:
        await self.lost.aclose()
        for member in self._members.values():
            await member.aclose()
        for role in self._roles.values():
            await role.aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: a cell's task finds the channel in its environment overrides, as ecs's."""


def _store_unavailable() -> MachinesError:
    """Nothing was sent: answered at once, never looked for as a create whose answer was lost."""
    error = MachinesError("ecs_store_unavailable", "the store does not answer, so the ECS cell this session "
                          "launches in cannot be known: retry in a moment", retry_after=1.0, nothing_sent=True)
    error.public_message = error.message
    return error


def _unknown(session_id: str, where: str, exc: MachinesError) -> MachinesError:
    """The session's machine cannot be known now (its cell does not answer): a 503, not "not found"."""
    log.warning("session %s: %s did not answer: %s", session_id, where, exc)
    error = MachinesError("ecs_cell_unavailable", f"{where} did not answer, so session {session_id}'s task "
                          "cannot be known: retry in a moment", retry_after=max(exc.retry_after or 0.0, 1.0),
                          nothing_sent=True)
    error.public_message = error.message
    return error


def _removed(session_id: str, cell: str) -> MachinesError:
    """A session recorded in a cell ECS_CELLS no longer lists: refused, never launched in another
    (its task may still run there, unseen by this replica)."""
    error = MachinesError("ecs_cell_removed", f"session {session_id} was launched in ECS cell {cell}, which "
                          "ECS_CELLS no longer lists: put the cell back until its sessions have ended (drain a "
                          "cell, then remove it)", retry_after=60.0, nothing_sent=True)
    error.public_message = error.message
    return error


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
