"""Since when each idle bot on this replica's channel has waited: the reserve's idle records.

A record lives exactly as long as its bot is in the channel's idle pool. The claim, a retirement
and the sweep forget a bot they take; a bot whose channel drops is forgotten by its drop; and each
refill forgets whatever is no longer in the pool, so a bot taken some other way (and then bound
to a session, whose close the reserve does not count as a lost idle bot) never leaves its record
behind: the map is bounded by the pool, whatever path a bot leaves by.

A bot of the frozen tier (dispatcher/reserve/frozen.py) is a pool record in state `frozen`: off
the channel (its machine suspended or stopped), still the reserve's, claimable by a thaw. Frozen
records leave only by `take_frozen` (a claim or a retirement), never by a channel's drop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FrozenBot:
    """A pool record in state frozen: what a claim needs to know of a bot that is off the channel."""

    bot_id: str
    since: float  # frozen at (the reserve's clock)
    image: str
    capabilities: tuple[str, ...]
    expires: int | None  # its credential's expiry: the claim record lasts as long


class IdleRecords:
    def __init__(self) -> None:
        self._since: dict[str, float] = {}  # bot id → its idle hello (the reserve's clock)
        self._frozen: dict[str, FrozenBot] = {}  # bot id → its frozen record, oldest first

    def greeted(self, bot_id: str, now: float) -> None:
        """An idle bot said hello: its idle time starts now."""
        self._since[bot_id] = now

    def forget(self, bot_id: str) -> bool:
        """The bot left the pool (taken, retired or dropped); True if it was idle here until now."""
        return self.take(bot_id) is not None

    def take(self, bot_id: str) -> float | None:
        """The bot left the pool: since when it was idle here, if it was."""
        return self._since.pop(bot_id, None)

    def since(self, idle_now: Iterable[str], now: float) -> dict[str, float]:
        """Each bot in the pool now → when it became idle (`now` for one not seen greeting), and
        every record of a bot no longer in the pool dropped."""
        self._since = {bot_id: self._since.get(bot_id, now) for bot_id in idle_now}
        return dict(self._since)

    def __len__(self) -> int:
        return len(self._since)

    def froze(self, bot: FrozenBot) -> None:
        self._frozen[bot.bot_id] = bot

    def frozen(self) -> list[FrozenBot]:
        """The frozen records, oldest first."""
        return list(self._frozen.values())

    def take_frozen(self, usable: Callable[[FrozenBot], bool] = lambda bot: True) -> FrozenBot | None:
        """Removes and returns the oldest usable frozen record: synchronous, hence atomic here."""
        for bot in self._frozen.values():
            if usable(bot):
                del self._frozen[bot.bot_id]
                return bot
        return None
