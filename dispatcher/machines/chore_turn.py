"""One replica a period does a chore that lists every machine the provider holds for the deployment.

The reaper and the warm reserve's sweep each list the whole fleet (at 100,000 machines one list is tens
of megabytes, parsed on the event loop): done at every replica, their cost grew with the replicas while
their work (stop what is overdue or left over, idempotently) is the deployment's. A turn is the store's
first use of the chore's name within its period: the first replica to ask in a period does it, the
others skip that period. A chore that failed or saw only part of the fleet gives its turn back, so the
next replica to ask does it (one failing replica never holds every period). A store that does not answer
gives the turn to whoever asks (the chore is idempotent; each replica doing it is what every replica did
before). Local bots are each replica's own processes, listed by their replica alone: every replica keeps
its own chores (docs/replicas.md).
"""

from __future__ import annotations

import logging

from dispatcher.machines.base import Machines, WarmMachines
from dispatcher.machines.local.provider import LocalMachines
from dispatcher.store.coordination import Turns

log = logging.getLogger("dispatcher.machines.chore_turn")

# The turn is held well under the period (the reaper and the reserve wait 0.8–1.2 of it): the next
# period's first asker is never refused by the last one's record.
HELD_SHARE = 0.7


class ChoreTurn:
    def __init__(self, turns: Turns, machines: Machines | WarmMachines, chore: str) -> None:
        # None: a provider whose list is this replica's own: always this replica's turn.
        self._turns = None if isinstance(machines, LocalMachines) else turns
        self._chore = f"chore:{chore}"

    async def mine(self, period_seconds: float) -> bool:
        """True when this replica does the chore this period (the first to ask in it)."""
        if self._turns is None:
            return True
        try:
            return await self._turns.take(self._chore, max(1.0, period_seconds * HELD_SHARE))
        except Exception as exc:  # the store: an idempotent chore done twice costs a list, skipped costs more
            log.info("%s: the deployment's turn could not be read (%s); done here", self._chore, exc)
            return True

    async def give_back(self) -> None:
        """The chore was not done whole this period: the next replica to ask takes the turn."""
        if self._turns is None:
            return
        try:
            await self._turns.give_back(self._chore)
        except Exception as exc:  # the store: the turn runs out with its period
            log.info("%s: the deployment's turn not given back (%s)", self._chore, exc)
