"""The warm reserve over cells (ECS_CELLS, GCE_CELLS, ACI_CELLS, CLOUDRUN_CELLS, K8S_CELLS): one implementation for
every provider that launches over cells, each cell's reserve machines held by that cell's own warm provider.

A refill takes its token from the cells' launch buckets, which cold starts take theirs from too, only
in an open cell with room (cell_refills.py); the reserve machine is counted in that cell's running
count and room from then on. A refill the cell turns away (throttling, a quota) drains the cell as a
cold launch's would (the provider's `drain_reason`, `drained_with`).

Each warm bot's cell is known where it was launched, where its identity was proved, or from a listing of
the cells' reserve machines, or by asking every cell (`_cell_of_bot`: a bot id two cells hold is
refused, and a listing records it in neither); a listing never moves a bot known here, since another
account or project can run a look-alike under a bot id it has seen. A claim re-tags the machine in
its cell, once (a second claim finds it gone or taken), then records the session's cell in the store
(as a cold launch does), so any replica's look-ups meet it there. A claim for a session already
recorded in another cell is refused before the re-tag (its machine is there), and a claim that fails
records nothing: the cold start that follows may go to any open cell. A cell that does not answer its
listing keeps its last counts and is shown `unreadable`, and takes only its own warm bots with it
(`in_lost_cell`). A retirement counts its machine out of the cell only when it took it out (a member
that can tell: `_retire_in`); one that found it claimed meanwhile, or gone, leaves the count to the
next listing. A closed cell's (room 0) reserve machines are listed as made at the epoch, so the
reserve's sweep retires them.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.cell_refills import CellRefills
from dispatcher.machines.cells import Cells, holding
from dispatcher.outbound.retry import EXHAUSTED
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.machines.cells")


class CellWarmMember(Protocol):
    """One cell's own warm provider, as the reserve over cells calls it."""

    async def run_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                       release: str = DEFAULT_RELEASE) -> None:
        """The reserve machine's create, its token already taken (from the cells' buckets)."""
        ...

    async def holds_idle(self, bot_id: str) -> bool:
        """Whether this cell runs `bot_id`'s reserve machine (raises when the cell does not answer)."""
        ...

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult: ...

    async def retire(self, bot_id: str) -> None: ...

    async def idle_machines(self) -> builtins.list[IdleMachine]: ...


class CellReserve:
    """Mixed into a provider over cells (before it, so its `creates` is the cells' refills)."""

    _warm: dict[str, CellWarmMember]  # cell → its warm provider, filled as the cells are built
    # Bot id → its cell (launched, proved or listed here): a listing never moves it, since an admin of any
    # cell's account or project can run a look-alike under a bot id it has seen.
    _bot_cells: Recent[str, str]
    bot_image: str

    if TYPE_CHECKING:  # what the provider over cells (cell_launches.py) gives
        cells: Cells
        label: str
        thing: str
        _cell_of: Recent[str, str]
        _holders: FirstClaims

        @property
        def _holder_key(self) -> str: ...

        def _store_unavailable(self) -> MachinesError: ...
        async def _holder(self, spec: LaunchSpec, cell: str) -> tuple[str, bool]: ...
        def drain_reason(self, exc: MachinesError, cell: str) -> str | None: ...
        def drained_with(self, exc: MachinesError, cell: str) -> tuple[str, ...]: ...

    def _start_reserve(self, able: Callable[[str | None], tuple[str, ...]] | None = None) -> None:
        """Called once the cells are built: refills take the cells' own buckets, in the cells `able` to
        run the release's image (cell_refills.py; None: every cell)."""
        self.creates = CellRefills(self.cells, able)

    async def _idle_cell(self, bot_id: str) -> str | None:
        """The cells' hook (their idle bots' identity review): the cell this reserve knows or finds the bot in."""
        return await self._cell_of_bot(bot_id)

    def _idle_proved(self, bot_id: str, cell: str) -> None:
        """The cells' hook: a bot's identity proved it in `cell` (`_bot_proved`)."""
        self._bot_proved(bot_id, cell)

    def _bot_proved(self, bot_id: str, cell: str) -> None:
        """A reserve bot's identity proved its machine in `cell`: its claim, wherever it dialled, goes
        there at once, whatever a listing finds under its id later."""
        self._bot_cells[bot_id] = cell

    def reported_image(self, image: str | None) -> str:
        """What an idle bot launched for `image` (a release's reference) reports: the same in every cell."""
        return image or self.bot_image

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        cell = await self.creates.idle_turn(bot_id, image)
        try:
            await self._warm[cell].run_idle(bot_id, channel_token, image=image, release=release)
        except MachinesError as exc:
            self.cells.idle_gone(cell)
            if (reason := self.drain_reason(exc, cell)) is not None:
                for drained in self.drained_with(exc, cell):
                    self.cells.drain(drained, reason, exc.retry_after)
            raise
        self._bot_cells[bot_id] = cell

    async def _cell_of_bot(self, bot_id: str) -> str | None:
        """The cell whose reserve machine `bot_id` is: known here, else asked of every cell. A bot id
        that two cells hold is no cell's (a look-alike under an id seen elsewhere: refused and logged,
        never the first cell that answers); one found while another cell did not answer is taken but
        not kept, so the next look asks that cell too."""
        if (cell := self._bot_cells.get(bot_id)) is not None:
            return cell
        answers = await asyncio.gather(*(member.holds_idle(bot_id) for member in self._warm.values()),
                                       return_exceptions=True)
        found: builtins.list[str] = []
        failed: MachinesError | None = None
        for cell, answer in zip(self._warm, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, MachinesError):
                    raise answer
                log.warning("%s cell %s did not answer a look for reserve bot %s: %s", self.label, cell, bot_id, answer)
                failed = answer
            elif answer:
                found.append(cell)
        if len(found) > 1:
            log.warning("%s cells %s each hold a reserve %s of bot %s: refused in all (a look-alike runs in all"
                        " but one)", self.label, ", ".join(found), self.thing, bot_id)
            return None
        if not found:
            if failed is not None:
                raise failed
            return None
        if failed is None:
            self._bot_cells[bot_id] = found[0]
        return found[0]

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        cell = await self._cell_of_bot(bot_id)
        if cell is None:
            raise MachinesError("reserve_bot_gone", f"reserve {self.thing} {bot_id} is gone or already claimed")
        self._launched_elsewhere(spec, bot_id, cell, await self._recorded(spec))
        result = await self._claim_in(cell, bot_id, spec)
        self._forget(bot_id)
        self._cell_of[spec.session_id] = cell
        self.cells.idle_claimed(cell)
        return result

    async def _claim_in(self, cell: str, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        """The member's claim in `cell`, then the session's cell recorded there (a replay anywhere meets it).
        Recorded once the machine carries the session, never before: a claim whose re-tag fails leaves
        no record, so the cold start that follows may go to any open cell, not only this one
        (cloudrun/cell_reserve.py records first: its claim is itself a store record)."""
        result = await self._warm[cell].adopt(bot_id, spec)
        holder, _ = await self._holder(spec, cell)
        self._launched_elsewhere(spec, bot_id, cell, holder)
        return result

    async def _recorded(self, spec: LaunchSpec) -> str | None:
        """The cell a launch of the session recorded, if any (a replay, at any replica)."""
        try:
            return await self._holders.held(self._holder_key + spec.session_id)
        except StoreUnavailable:
            raise self._store_unavailable() from None

    def _launched_elsewhere(self, spec: LaunchSpec, bot_id: str, cell: str, holder: str | None) -> None:
        """Refuses the claim when a launch of the session went to another cell first: its machine is
        there (the claim's retirement then stops this bot's machine)."""
        if holder is not None and holder != cell:
            raise MachinesError("reserve_bot_elsewhere", f"session {spec.session_id} was launched in {self.label} "
                                f"cell {holder}, not reserve {self.thing} {bot_id}'s cell {cell}")

    def _forget(self, bot_id: str) -> None:
        self._bot_cells.pop(bot_id, None)

    async def retire(self, bot_id: str) -> None:
        cell = await self._cell_of_bot(bot_id)
        if cell is None:
            return
        counted_out = await self._retire_in(cell, bot_id)
        self._forget(bot_id)
        if counted_out:
            self.cells.idle_gone(cell)

    async def _retire_in(self, cell: str, bot_id: str) -> bool:
        """The member's retirement; whether it took the machine out of the cell's room (a provider that cannot
        tell: True). False: it found it claimed by a session (it still holds the room) or gone already (a
        listing counted it out, or will), so the count is left as the listings and this replica's own
        changes make it."""
        await self._warm[cell].retire(bot_id)
        return True

    async def idle_machines(self) -> builtins.list[IdleMachine]:
        """Every answering cell's reserve machines, each cell's counted (what holds its room: a `RoomListing`'s
        count, else all it lists); one that does not answer is logged, shown `unreadable` and left out. A
        closed cell's are listed as made at the epoch: the sweep retires them. Raises only when no cell answered."""
        found = await asyncio.gather(*(member.idle_machines() for member in self._warm.values()),
                                     return_exceptions=True)
        idle: builtins.list[IdleMachine] = []
        holders: dict[str, builtins.list[str]] = {}  # bot id → the cells listing it
        failures: builtins.list[MachinesError] = []
        for cell, answer in zip(self._warm, found, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, MachinesError):
                    raise answer
                log.warning("%s cell %s: its reserve %ss could not be listed: %s", self.label, cell, self.thing, answer)
                if answer.reason != EXHAUSTED:  # the dispatcher's own limit says nothing of the cell
                    self.cells.unreadable(cell, f"its reserve {self.thing}s could not be listed ({answer.reason})")
                failures.append(answer)
                continue
            self.cells.idle_counted(cell, holding(answer, len(answer)))
            for machine in answer:
                holders.setdefault(machine.bot_id, []).append(cell)
            idle += [dataclasses.replace(m, created_at=0.0) for m in answer] if self.cells.closed(cell) else answer
        if failures and len(failures) == len(self._warm):
            raise failures[0]
        self._note_listed(holders, whole=not failures)
        return idle

    def _note_listed(self, holders: dict[str, builtins.list[str]], *, whole: bool) -> None:
        """Records the cell of each listed bot not known here that one cell alone holds, as `_cell_of_bot`
        would: a bot id two cells hold is no cell's (logged), one found while a cell did not answer
        (`whole` False) is left to the next look, and a bot known here is never moved."""
        for bot_id, cells in holders.items():
            if bot_id in self._bot_cells:
                continue
            if len(cells) > 1:
                log.warning("%s cells %s each list a reserve %s of bot %s: recorded in none (a look-alike runs in"
                            " all but one)", self.label, ", ".join(cells), self.thing, bot_id)
            elif whole:
                self._bot_cells[bot_id] = cells[0]

    def in_lost_cell(self, bot_id: str) -> bool:
        cell = self._bot_cells.get(bot_id)
        return cell is not None and not self.cells.readable(cell)

    def exit_detail(self, bot_id: str) -> str | None:
        """A cloud machine's exit is not seen here: a bot that never dialled in is only missing."""
        return None
