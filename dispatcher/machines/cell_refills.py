"""The warm reserve's create limit over cells (ECS_CELLS): the cells' own launch buckets, which cold
starts take their tokens from too (`Cells.creates`, `<provider>:<cell>`, counted once for the
deployment), so the reserve never takes a token a cold start in that cell needs.

A refill takes its token only in a cell that is open (not drained for throttling or a quota) and has
room, the one with the most spare tokens, and counts its machine in that cell's running count at
once (it is under way), so the refills of one tick never fill a cell past its room. What the planner
sizes by (`look`) is the spare tokens of those cells alone: a drained cell's tokens launch nothing.
"""

from __future__ import annotations

from dispatcher.machines.cells import Cells
from dispatcher.store.coordination import CreateTurn


class CellRefills:
    def __init__(self, cells: Cells) -> None:
        self._cells = cells

    async def cold(self, max_wait: float) -> CreateTurn:
        """A token for a launch that waits its turn, in the first open cell with room (none: refused)."""
        cells = self._cells.refillable()
        if not cells:
            return CreateTurn(False, 0.0, 0)
        return await self._cells.creates.cold_in(cells[0], max_wait)

    async def refill(self) -> CreateTurn:
        turn = await self._cells.creates.refill(among=self._cells.refillable())
        if turn.granted and (cell := self._cells.creates.last_refilled()) is not None:
            self._cells.idle_launching(cell)
        return turn

    async def look(self) -> CreateTurn:
        return await self._cells.creates.look(among=self._cells.refillable())

    async def idle_turn(self, bot_id: str) -> str:
        """The cell a reserve launch goes to: the one whose token its refill took, else (a launch not
        after a refill) the first open cell with room that gives a token, as a cold start's."""
        cell = self._cells.creates.refilled_app()
        if cell is None:
            cell = await self._cells.cold_turn(bot_id)
            self._cells.idle_launching(cell)
        return cell
