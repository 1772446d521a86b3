"""The reaper: nothing outlives its session, whatever happened to the dispatcher that started it.

Every sweep lists this deployment's machines through the machines protocol and
- stops any machine still active past `MAX_SESSION_SECONDS` + `REAPER_GRACE_SECONDS` (a bot that
  hung, or whose dispatcher died before it could stop it), and ends its room;
- removes every machine whose session has ended but which the provider still holds (a powered-off
  Compute Engine VM keeps its disk) and ends its room (a room must not outlive its bot).
One replica of the deployment sweeps each interval, the first to ask for the turn in it
(dispatcher/machines/chore_turn.py): each sweep lists every machine. Several may still sweep at once
(a store that does not answer): stop and delete are idempotent, and each replica's interval is
jittered so they do not hit the provider in lockstep.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dispatcher.machines.base import Machine, Machines
from dispatcher.machines.cells import PartialListing
from dispatcher.machines.chore_turn import ChoreTurn
from dispatcher.media.rooms import Rooms
from dispatcher.observability.metrics import Metrics

log = logging.getLogger("dispatcher.sessions.reaper")

# Providers keep ended machines listed for a while (ECS shows stopped tasks for about an hour):
# remember which ended sessions this replica already cleaned, so each costs its calls once.
REMEMBERED_ENDED_SESSIONS = 10_000


@dataclass(frozen=True)
class ReaperSettings:
    interval_seconds: float = 60.0
    grace_seconds: float = 120.0  # beyond the max session: the bot's own timer gets to act first
    jitter: float = 0.2  # each wait is interval × (1 ± jitter)


class Reaper:
    def __init__(
        self,
        machines: Machines,
        rooms: Rooms | None,
        metrics: Metrics,
        *,
        max_session_seconds: int,
        settings: ReaperSettings,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ended: Callable[[Machine], None] | None = None,
        turn: ChoreTurn | None = None,
    ) -> None:
        self._machines = machines
        self._rooms = rooms
        self._metrics = metrics
        self._deadline = max_session_seconds + settings.grace_seconds
        self._settings = settings
        self._clock = clock
        self._sleep = sleep  # a seam: tests see the waits between sweeps without waiting them
        self._cleaned: OrderedDict[str, None] = OrderedDict()
        self._ended = ended  # each ended machine listed, told (dispatcher/sessions/machine_ends.py)
        self._turn = turn  # None: this replica sweeps every interval

    async def sweep(self) -> Counter[str]:
        """One pass. Returns what it did, by reason; a failing call is logged and counted, never raised."""
        done: Counter[str] = Counter()
        try:
            machines = await self._machines.list()
        except Exception as exc:
            log.warning("reaper: listing machines failed: %s", exc)
            self._metrics.reaped("list_failed")
            done["list_failed"] += 1
            return done
        now = self._clock()
        for machine in machines:
            if self._ended is not None and not machine.state.is_active:
                self._ended(machine)
            if machine.state.is_active and now - machine.created_at > self._deadline:
                reason = "overdue"
                ok = await self._attempt(self._machines.stop(machine.session_id), machine.session_id, reason)
                if ok:
                    await self._end_room(machine.session_id, not machine.has_room)
            elif not machine.state.is_active and machine.session_id not in self._cleaned:
                reason = "ended_session"
                ok = await self._attempt(self._machines.stop(machine.session_id), machine.session_id, reason)
                ok = await self._end_room(machine.session_id, not machine.has_room) and ok
                if ok:
                    self._remember(machine.session_id)
            else:
                continue
            outcome = reason if ok else f"{reason}_failed"
            done[outcome] += 1
            self._metrics.reaped(outcome)
        if isinstance(machines, PartialListing):  # a room's machine may run in a cell that did not answer
            log.warning("reaper: cells %s not listed: no room is ended as an orphan this sweep",
                        ", ".join(machines.missing))
            done["cells_missing"] += 1
        elif self._rooms is not None:
            active = {m.session_id for m in machines if m.state.is_active}
            await self._end_orphan_rooms(active, now, done)
        if done:
            log.info("reaper: %s", dict(done))
        return done

    async def _end_orphan_rooms(self, active: set[str], now: float, done: Counter[str]) -> None:
        assert self._rooms is not None
        try:
            rooms = await self._rooms.list_sessions()
        except Exception as exc:
            log.warning("reaper: listing rooms failed: %s", exc)
            done["list_rooms_failed"] += 1
            self._metrics.reaped("list_rooms_failed")
            return
        for room in rooms:
            # Young rooms may belong to a start in progress whose machine is not listed yet.
            if room.session_id in active or room.session_id in self._cleaned:
                continue
            if now - room.created_at <= self._settings.grace_seconds:
                continue
            ok = await self._end_room(room.session_id)
            if ok:
                self._remember(room.session_id)
            outcome = "orphan_room" if ok else "orphan_room_failed"
            done[outcome] += 1
            self._metrics.reaped(outcome)

    def _remember(self, session_id: str) -> None:
        self._cleaned[session_id] = None
        if len(self._cleaned) > REMEMBERED_ENDED_SESSIONS:
            self._cleaned.popitem(last=False)

    async def _end_room(self, session_id: str, roomless: bool = False) -> bool:
        if self._rooms is None or roomless:  # a WebRTC or phone session never had a room
            return True
        return await self._attempt(self._rooms.delete(session_id), session_id, "room")

    @staticmethod
    async def _attempt(call: object, session_id: str, what: str) -> bool:
        try:
            await call  # type: ignore[misc]
        except Exception as exc:
            log.warning("reaper: %s of session %s failed: %s", what, session_id, exc)
            return False
        return True

    async def run(self) -> None:
        """Sweep forever, jittered; cancel the task to stop."""
        while True:
            spread = 1 + random.uniform(-self._settings.jitter, self._settings.jitter)  # noqa: S311 (not crypto)
            await self._sleep(self._settings.interval_seconds * spread)
            try:
                if self._turn is None or await self._turn.mine(self._settings.interval_seconds):
                    done = await self.sweep()
                    if self._turn is not None and ({"list_failed", "cells_missing"} & done.keys()):
                        await self._turn.give_back()  # another replica sweeps this period
            except Exception:
                # `sweep` handles provider failures itself; this is a bug. Keep sweeping, but say so.
                log.exception("reaper: sweep failed")
