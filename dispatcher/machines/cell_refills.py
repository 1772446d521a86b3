"""The warm reserve's create limit over cells (ECS_CELLS): the cells' own launch buckets, which cold
starts take their tokens from too (`Cells.creates`, `<provider>:<cell>`, counted once for the
deployment), so the reserve never takes a token a cold start in that cell needs.

A refill takes its token only in a cell that is open (not drained for throttling or a quota), has
room and can run the bot's release (`able`: an ECS cell maps its task definition), the one with the
most spare tokens, and counts its machine in that cell's running count at once (it is under way), so
the refills of one tick never fill a cell past its room. What the planner sizes by (`look`) is the
spare tokens of the open cells with room: a drained cell's tokens launch nothing (a release that few
cells map may find fewer than that).
"""

from __future__ import annotations

from collections.abc import Callable

from dispatcher.machines.cells import Cells
from dispatcher.store.coordination import CreateTurn


class CellRefills:
    def __init__(self, cells: Cells, able: Callable[[str | None], tuple[str, ...]] | None = None) -> None:
        """`able`: the cells that can run a release's image (None: the deployment's own), where its
        refills go (ecs/cells.py: those that map its task definition); None: every cell."""
        self._cells = cells
        self._able = able

    def _open_for(self, image: str | None) -> tuple[str, ...]:
        cells = self._cells.refillable()
        return cells if self._able is None else tuple(c for c in cells if c in self._able(image))

    async def cold(self, max_wait: float) -> CreateTurn:
        """A token for a launch that waits its turn, in the first open cell with room (none: refused)."""
        cells = self._cells.refillable()
        if not cells:
            return CreateTurn(False, 0.0, 0)
        return await self._cells.creates.cold_in(cells[0], max_wait)

    async def refill(self) -> CreateTurn:
        return await self.refill_for(None)

    async def refill_for(self, image: str | None) -> CreateTurn:
        """A refill's token for a reserve bot of `image`, only in a cell that can run it."""
        turn = await self._cells.creates.refill(among=self._open_for(image))
        if turn.granted and (cell := self._cells.creates.last_refilled()) is not None:
            self._cells.idle_launching(cell)
        return turn

    async def look(self) -> CreateTurn:
        return await self._cells.creates.look(among=self._cells.refillable())

    async def idle_turn(self, bot_id: str, image: str | None = None) -> str:
        """The cell a reserve launch of `image` goes to: the one whose token its refill took, else (a
        launch not after a refill) the first open cell with room that can run it and gives a token, as a
        cold start's."""
        cell = self._cells.creates.refilled_app()
        if cell is None:
            able = self._cells.names if self._able is None else self._able(image)
            cell = await self._cells.cold_turn(bot_id, tried=[c for c in self._cells.names if c not in able])
            self._cells.idle_launching(cell)
        return cell
