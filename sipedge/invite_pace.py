"""A trunk's INVITEs handed to the SIP stack at least a turn (1/`cps`) apart at this edge, whatever came before.

The dispatcher answers `joined` at each call's own turn of the trunk's INVITE bucket
(dispatcher/phone/invite_spacing.py), but each answer then takes its own way to the INVITE: the HTTP answer
read, this edge's event loop, its poll. Two answers a turn apart could so reach the SIP stack closer than a
turn, and the trunk's far end count more than `cps`. Spacing them here again, last, leaves only the SIP
thread's hop and the network between this edge's spacing and the carrier (docs/sip.md, "Pacing")."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("sipedge")


class InvitePace:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}  # trunk → when its next INVITE may be handed over
        self._locks: dict[str, asyncio.Lock] = {}

    async def turn(self, trunk: str, cps: float, call: str = "") -> None:
        """Returns when an INVITE through `trunk` may go: a turn after this edge's previous one on it. Logs the
        moment it hands `call` over on its clock, in full: what the trunk's pace is checked on."""
        async with self._locks.setdefault(trunk, asyncio.Lock()):
            # Again until due: the event loop may wake a sleeper up to its clock's resolution early.
            while (wait := self._next.get(trunk, 0.0) - self._clock()) > 0:
                await self._sleep(wait)
            handed = self._clock()
            self._next[trunk] = handed + 1 / cps
            log.info("sipedge: trunk %s's INVITE handed over at %r (the edge's monotonic clock): %s", trunk,
                     handed, call)
