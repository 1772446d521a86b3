"""A provider's machines spread over cells (AWS accounts, GCP projects): the one launch, look-up
and listing over its cells' own providers ("members"), for ECS_CELLS and CLOUDRUN_CELLS alike.

Which cell a launch goes to, each cell's launch bucket and drain: dispatcher/machines/cells.py. A
session's launch is recorded in the store before its create (`FirstClaims`, `<provider>-cell:<session>`),
so a replay at any replica meets the cell it went to, even after a drain sent it off its home cell
(a stable hash of its id); a cell that turns it away lets the record go, but only when nothing
there can have been made: the member's own rule within one launch (`CellTurnedAway`), and never
in a launch that found the record there already (an earlier create's answer may have been lost:
its machine may land later, and is looked for there). A session's machine is looked
for in the cell its record names, and only there (a cell that does not answer then makes the look a
503, never a "not found" that would launch it twice); without a record, in the cell this replica
launched it in and its home cell. One cell that does not answer its reads is skipped by the
listing (shown `unreadable` on `/status`), so the others' starts, counts and reaping go on; one the
dispatcher could not ask for want of its own descriptors (`dispatcher_exhausted`) is not taken for lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError
from dispatcher.machines.cells import Cells, CellView, PartialListing, holding
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.machines.polling import poll_until_started
from dispatcher.outbound.retry import EXHAUSTED
from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination
from dispatcher.store.first_read_back import first_read_back
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.machines.cells")
HOLD_MARGIN = 600  # seconds a record outlives the session's longest life: a late replay still finds it


class Member(Protocol):
    """One cell's own provider."""

    async def status(self, session_id: str) -> Machine | None: ...
    async def stop(self, session_id: str) -> bool: ...
    async def list(self) -> list[Machine]: ...
    async def aclose(self) -> None: ...


M = TypeVar("M", bound=Member)


class CellLaunches(Generic[M]):
    """`label`: the provider as operators name it ("ECS"); `setting`: the variable listing the cells;
    `thing`: what a session's machine is called there ("task"). A subclass says how a launch is made
    in one cell (`run_in`) and which failures drain a cell (`drain_reason`)."""

    name: str
    label: str
    setting: str
    thing: str

    def __init__(self, members: Mapping[str, M], cells: Cells, coordination: Coordination,
                 poll_seconds: float) -> None:
        self._members = dict(members)
        self.cells = cells
        self._poll_seconds = poll_seconds
        self._cell_of: Recent[str, str] = Recent()  # session id → the cell its machine was launched in here
        self._holders = coordination.key_holders
        self.lost = LostCreates(self.status, self.stop)

    async def run_in(self, cell: str, spec: LaunchSpec, *, turn_away: bool) -> LaunchResult:
        """The session's create in `cell`, its token taken. `turn_away`: a throttling or quota answer
        that made nothing raises `CellTurnedAway` at once (another cell takes it)."""
        raise NotImplementedError

    def drain_reason(self, exc: MachinesError, cell: str) -> str | None:
        """Why a launch's failure in `cell` drains it (None: it does not)."""
        raise NotImplementedError

    def drained_with(self, exc: MachinesError, cell: str) -> tuple[str, ...]:
        """The cells a refusal met in `cell` drains: `cell` alone, unless its provider refused for what
        other cells share with it (gce/cells.py: a project's rate, over every zone it is listed in)."""
        return (cell,)

    def lacks(self, exc: MachinesError) -> bool:
        """Whether a failure says the cell lacks what this one launch needs (a release's own template)
        and made nothing: the launch goes on to another cell, the cell is not drained (other launches
        may find all they need there)."""
        return False

    def passed_over(self, spec: LaunchSpec) -> list[str]:
        """The cells known, before any create, to lack what this launch needs (ecs/cells.py: a release's
        task definition a cell does not map): the launch goes to the others, none of them drained."""
        return []

    def lacking_everywhere(self, spec: LaunchSpec, cells: list[str], exc: MachinesError | None) -> MachinesError:
        """The error when every cell lacked what the launch needs (`lacks`: `exc`, the last one's
        refusal; `passed_over`: None, nothing sent)."""
        if exc is None:
            raise NotImplementedError("a provider that passes cells over says why none can run the launch")
        return exc

    @property
    def _holder_key(self) -> str:
        return f"{self.name}-cell:"

    def views(self) -> list[CellView]:
        return self.cells.views()

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        lacking = self.passed_over(spec)  # cells that lack what this launch needs (`lacks` too), not drained
        if len(lacking) == len(self._members):
            raise self.lacking_everywhere(spec, lacking, None)  # nothing sent, no cell's token taken
        tried = list(lacking)
        while True:  # at most once per cell: each one that turns the launch away is not tried again
            cell = await self.cells.cold_turn(spec.session_id, tried=tried, prefer=self._cell_of.get(spec.session_id))
            holder, earlier = await self._holder(spec, cell)
            elsewhere = [c for c in self.cells.order(spec.session_id) if c not in (*tried, holder) and not
                         self.cells.drained(c)]
            moves = not earlier and holder == cell  # no create of the session can have been sent anywhere yet
            try:  # with nowhere else to go (or its machine maybe there), a throttled create is retried here
                result = await self.run_in(holder, spec, turn_away=moves and bool(elsewhere))
            except MachinesError as exc:
                if moves and self.lacks(exc):
                    lacking.append(holder)
                    if not elsewhere:
                        raise self.lacking_everywhere(spec, lacking, exc) from None
                    await self._let_go(spec, cell)
                    tried.append(cell)
                    continue
                if (reason := self.drain_reason(exc, holder)) is None:
                    raise
                turned = exc
            else:
                self._cell_of[spec.session_id] = holder
                if result.created:
                    self.cells.launched(holder)
                return result
            for drained in self.drained_with(turned, holder):
                self.cells.drain(drained, reason, turned.retry_after)
            if not moves:  # an earlier launch of the session went there: its machine may be there, or land there
                raise turned
            await self._let_go(spec, cell)  # nothing was made: a replay may go elsewhere
            tried.append(cell)

    async def _holder(self, spec: LaunchSpec, cell: str) -> tuple[str, bool]:
        """The cell the session's launch goes to: `cell`, unless an earlier launch of it (a replay, at
        any replica) went elsewhere first, recorded in the store: a replay sent to another cell
        would make a second machine. And whether an earlier launch recorded it: its create may have
        been sent there (its answer lost), so this launch stays there, whatever the cell answers."""
        key = self._holder_key + spec.session_id
        try:
            recorded = await self._holders.held(key)
            holder = recorded or await first_read_back(self._holders, key, cell,
                                                       spec.max_session_seconds + HOLD_MARGIN)
        except StoreUnavailable:
            raise self._store_unavailable() from None
        self.member(spec.session_id, holder)  # a cell no longer listed: refused, never launched elsewhere
        return holder, recorded is not None

    def member(self, session_id: str, cell: str) -> M:
        if (member := self._members.get(cell)) is not None:
            return member
        raise self._removed(session_id, cell)

    async def _let_go(self, spec: LaunchSpec, cell: str) -> None:
        with contextlib.suppress(StoreUnavailable):  # kept at worst: a replay goes to that cell again
            await self._holders.let_go(self._holder_key + spec.session_id, cell)

    async def status(self, session_id: str) -> Machine | None:
        found = await self.find(session_id)
        return found[1] if found is not None else None

    async def find(self, session_id: str) -> tuple[str, Machine] | None:
        """The session's machine and its cell. Its recorded cell is asked alone: a launch goes there
        only, so its answer is the answer (and one that fails is a 503, never a wrong "not found").
        Without a record, nothing was launched since its record ran out: this replica's and the home
        cell are asked. The store out of reach: every cell, and none found while one did not answer is a 503."""
        near = [self._cell_of.get(session_id), self.cells.home(session_id)]
        try:
            recorded, store_down = await self._holders.held(self._holder_key + session_id), False
        except StoreUnavailable:
            recorded, store_down = None, True
        cells = [recorded] if recorded is not None else [*near, *self._members] if store_down else near
        failed: tuple[str, MachinesError] | None = None
        for cell in dict.fromkeys(c for c in cells if c is not None):
            member = self.member(session_id, cell)  # a recorded cell no longer listed: refused
            try:
                machine = await member.status(session_id)
            except MachinesError as exc:
                if exc.reason == EXHAUSTED:  # the dispatcher's own limit: the cell was never asked
                    raise
                if cell == recorded:
                    raise self.unknown(session_id, f"{self.label} cell {cell}", exc) from None
                log.warning("%s cell %s did not answer a look for session %s: %s", self.label, cell, session_id, exc)
                failed = cell, exc
                continue
            if machine is not None:
                self._cell_of[session_id] = cell
                return cell, machine
        if failed is not None and store_down:  # nothing can say where it is
            raise self.unknown(session_id, f"the store and {self.label} cell {failed[0]}", failed[1])
        return None

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self._poll_seconds)

    async def stop(self, session_id: str) -> bool:
        found = await self.find(session_id)
        if found is None:
            return False
        cell, machine = found
        stopped = await self._members[cell].stop(session_id)
        if machine.state.is_active:
            self.cells.ended(cell)  # counted out now, not at the next list
        return stopped

    async def list(self) -> list[Machine]:
        """Every cell's machines, each cell's running count what its listing says holds its room (a
        `RoomListing`'s count, else its active machines); a cell that does not answer is logged, shown on
        `/status` and left out (its running count the last one read; the listing a `PartialListing`), so
        one cell's outage stops nobody else's starts or reaping. Raises only when no cell answered."""
        found = await asyncio.gather(*(member.list() for member in self._members.values()), return_exceptions=True)
        machines: list[Machine] = []
        for cell, answer in zip(self._members, found, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, MachinesError):
                    raise answer
                log.warning("%s cell %s could not be listed: %s", self.label, cell, answer)
                if answer.reason != EXHAUSTED:  # the dispatcher's own limit says nothing of the cell
                    self.cells.unreadable(cell, f"its {self.thing}s could not be listed ({answer.reason})")
                continue
            self.cells.counted(cell, holding(answer, sum(m.state.is_active for m in answer)))
            machines += answer
        missing = tuple(cell for cell, answer in zip(self._members, found, strict=True)
                        if isinstance(answer, BaseException))
        if len(missing) == len(self._members):
            raise next(a for a in found if isinstance(a, MachinesError))
        return PartialListing(machines, missing) if missing else machines

    async def aclose(self) -> None:
        await self.lost.aclose()
        for member in self._members.values():
            await member.aclose()

    def _store_unavailable(self) -> MachinesError:
        """Nothing was sent: answered at once, never looked for as a create whose answer was lost."""
        error = MachinesError(f"{self.name}_store_unavailable", f"the store does not answer, so the {self.label} "
                              "cell this session launches in cannot be known: retry in a moment", retry_after=1.0,
                              nothing_sent=True)
        error.public_message = error.message
        return error

    def unknown(self, session_id: str, where: str, exc: MachinesError) -> MachinesError:
        """The session's machine cannot be known now (its cell does not answer): a 503, not "not found"."""
        log.warning("session %s: %s did not answer: %s", session_id, where, exc)
        error = MachinesError(f"{self.name}_cell_unavailable", f"{where} did not answer, so session {session_id}'s "
                              f"{self.thing} cannot be known: retry in a moment",
                              retry_after=max(exc.retry_after or 0.0, 1.0), nothing_sent=True)
        error.public_message = error.message
        return error

    def _removed(self, session_id: str, cell: str) -> MachinesError:
        """A session recorded in a cell the setting no longer lists: refused, never launched in another
        (its machine may still run there, unseen by this replica)."""
        error = MachinesError(f"{self.name}_cell_removed", f"session {session_id} was launched in {self.label} "
                              f"cell {cell}, which {self.setting} no longer lists: put the cell back until its "
                              "sessions have ended (drain a cell, then remove it)", retry_after=60.0,
                              nothing_sent=True)
        error.public_message = error.message
        return error
