"""A machine's end waits a grace for its bot's own report: the one mechanism the usage count and the
lifecycle webhooks finalise a machine's end through.

A bot killed before its `ended` report still ends its session: its machine's end (`machine_ended`,
sessions/machine_ends.py) is handed to each finaliser (the usage count's addition, `session.ended`
pushed with `reason: machine_ended`) `MACHINE_END_GRACE_SECONDS` after it, so the bot's own report, with
its services' usage and its reason, is the session's end when it comes meanwhile (the finalisers' own
once-only marks, in the store, refuse the second end).

Where the replicas share a store, the pending end is written to it when its grace begins
(store/handed_over_ends.py), due `OWNER_MARGIN_SECONDS` after the grace: its owner takes it back at the
grace's end and finalises it, and should the owner die meanwhile (SIGKILL, a lost host) any replica's
sweep (`run`) finalises it once that margin is over, so no end is lost to a crash. The entry carries the
session's timeline as its owner saw it (its recent events, kept here as they are noted): a sweep that finds no
machine's end in the store's timeline (the owner died before its writes reached the store) restores the
timeline from the entry and finalises from it; one whose timeline is there (the bot's report, perhaps) uses
that. A store that does not take it at once leaves it to its owner alone (finalised here). A replica that closes
within a session's grace does not finalise it: that would spend the once-only marks, and the bot's report,
still on its way, would be refused at the replica it reaches. It hands the pending end over instead (the
same entry, due at the grace's end), and any replica's sweep finalises it once its grace is over: the
bot's report, if it came meanwhile at any replica, is then the end already counted and pushed, and the
machine's end adds nothing. With no store (one process) nobody else would ever finalise it, so the close
finalises it at once, from what the session holds then. docs/replicas.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dispatcher.store.handed_over_ends import HandedOverEnds
from dispatcher.store.timelines import MemoryTimelines

log = logging.getLogger("dispatcher.sessions.machine_end_grace")

MACHINE_END_GRACE_SECONDS = 3.0
CLOSE_WAIT_SECONDS = 2.0  # how long a closing replica waits for the finalisations (and hand-overs) in flight
SWEEP_SECONDS = 1.0  # how soon a handed-over end is finalised once its grace is over
LEASE_SECONDS = 30.0  # a claimed hand-over another replica takes again, should its finaliser die
BATCH = 64  # handed-over ends claimed per look
# A pending end is its owner's until this long past its grace (a loaded loop's lag, far over), then any
# replica's sweep takes it: how late a dead owner's end is finalised.
OWNER_MARGIN_SECONDS = 10.0
KEEP_WAIT_SECONDS = 1.0  # how long the grace's start waits for the store to keep its end (never the end's wait)
EVENT = "machine_ended"
# Sessions whose recent events this replica keeps for the entries it writes (their timeline, should their writes
# not reach the store): more than a replica's sessions within an hour, each MAX_EVENTS at most.
RECENT_SESSIONS = 2_000
RECENT_SECONDS = 3_600.0

Reader = Callable[[str], Awaitable[list[dict[str, Any]]]]
# Appends a session's events, from a kept end, to its timeline in the store (raises when the store does not take them).
Restorer = Callable[[str, list[dict[str, Any]]], Awaitable[None]]
# A session's machine end, its grace over; raises when it could not finalise it (the store did not answer), so
# that a handed-over end is kept and offered again: the finalisers' once-only marks make a second try harmless.
Finaliser = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class MachineEndGrace:
    def __init__(self, read: Reader, handed_over: HandedOverEnds, clock: Callable[[], float] = time.time,
                 restore: Restorer | None = None) -> None:
        self._read = read  # the session's timeline: a handed-over end's record is read back from it
        self._write_back = restore  # or, where it lacks the end, from the entry's record, written back first
        self._recent = MemoryTimelines(max_sessions=RECENT_SESSIONS, keep_seconds=RECENT_SECONDS)
        self.handed_over = handed_over
        self.clock = clock  # epoch seconds, as the replicas share them
        self.finalisers: list[Finaliser] = []
        self._waiting: dict[asyncio.Task[None], tuple[str, dict[str, Any], float]] = {}  # in their grace
        self._finalising: set[asyncio.Task[Any]] = set()

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: a machine's end is finalised once its grace is over; never waits."""
        if self.handed_over.shared:  # what an entry carries
            self._recent.remember(session_id, record)
        if record.get("event") != EVENT:
            return
        grace_ends = self.clock() + MACHINE_END_GRACE_SECONDS
        try:
            task = asyncio.get_running_loop().create_task(self._after_grace(session_id, dict(record), grace_ends))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to finalise with
            return
        self._waiting[task] = (session_id, dict(record), grace_ends)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._waiting.pop(task, None)
        self._finalising.discard(task)

    async def _after_grace(self, session_id: str, record: dict[str, Any], grace_ends: float) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        kept_until = grace_ends + OWNER_MARGIN_SECONDS
        kept = await self._keep(session_id, kept_until)
        await asyncio.sleep(max(0.0, began + MACHINE_END_GRACE_SECONDS - loop.time()))
        task = asyncio.current_task()
        if task is not None:  # its grace is over: a close waits for it rather than handing it over
            self._waiting.pop(task, None)
            self._finalising.add(task)
        if kept and not await self._take_own(session_id, kept_until):
            return
        if await self._finalise(session_id, record) and kept:
            try:
                await self.handed_over.done(session_id)
            except Exception as exc:  # its hold lapses and a sweep finds it finalised (the marks): adds nothing
                log.warning("session %s: its finalised machine end not removed (%s)", session_id, type(exc).__name__)
        # A finaliser that failed leaves a kept end held: its lease runs out and a sweep tries it again.

    async def _keep(self, session_id: str, kept_until: float) -> bool:
        """Whether the store now keeps the end for any replica, should this one die within its grace."""
        if not self.handed_over.shared:
            return False
        try:
            async with asyncio.timeout(KEEP_WAIT_SECONDS):
                await self.handed_over.keep(session_id, kept_until, self._recent.recalled(session_id))
        except Exception as exc:
            log.warning("session %s: its machine's end not kept in the store (%s): finalised here alone",
                        session_id, type(exc).__name__)
            return False
        return True

    async def _take_own(self, session_id: str, kept_until: float) -> bool:
        """Whether this replica finalises the end it kept (False: a sweep took it, its owner having lagged past
        the margin; or the store does not answer, and a sweep takes it once the margin is over)."""
        try:
            return await self.handed_over.take_own(session_id, kept_until, self.clock() + LEASE_SECONDS)
        except Exception as exc:
            log.warning("session %s: its kept machine end left to a sweep (%s)", session_id, type(exc).__name__)
            return False

    async def _finalise(self, session_id: str, record: Mapping[str, Any]) -> bool:
        """Whether every finaliser finalised the end (one's failure is said, the others still run)."""
        finalised = True
        for finalise in self.finalisers:
            try:
                await finalise(session_id, record)
            except Exception as exc:
                log.warning("session %s: its machine's end not finalised: %s", session_id, type(exc).__name__)
                finalised = False
        return finalised

    def _later(self, session_id: str, record: Mapping[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._finalise(session_id, record))
        self._finalising.add(task)
        task.add_done_callback(self._forget)

    async def sweep(self) -> int:
        """Finalises the handed-over ends whose grace is over (any replica's), once each; how many. A timeline
        that could not be read (the store: the read raises) or a finaliser that failed leaves the end claimed:
        its lease runs out and a sweep, here or at another replica, takes it again."""
        finalised = 0
        while claimed := await self.handed_over.due(self.clock(), LEASE_SECONDS, BATCH):
            for session_id in claimed:
                record = await self._record(session_id)
                if record is None:  # its timeline expired (or was erased), no record kept: nothing to finalise from
                    log.warning("session %s: a handed-over machine end whose timeline holds none", session_id)
                elif await self._finalise(session_id, record):
                    finalised += 1
                else:
                    log.warning("session %s: its handed-over machine end is offered again after its lease",
                                session_id)
                    continue
                await self.handed_over.done(session_id)
            if len(claimed) < BATCH:
                break
        return finalised

    async def _record(self, session_id: str) -> dict[str, Any] | None:
        """The machine's end a sweep finalises: the store's timeline's, else the entry's record's (written back
        to the timeline first, which the finalisers read)."""
        events = await self._read(session_id)
        record = _machine_end(events)
        if record is not None or self._write_back is None:
            return record
        kept = await self.handed_over.record(session_id)
        record = _machine_end(kept or [])
        if kept is None or record is None:
            return None
        present = {_identity(event) for event in events}
        missing = [event for event in kept if _identity(event) not in present]
        log.info("session %s: its machine end finalised from its kept record (%d events written back to its "
                 "timeline)", session_id, len(missing))
        await self._write_back(session_id, missing)
        return record

    async def run(self) -> None:
        """Sweeps every `SWEEP_SECONDS` where the replicas share a store (nothing is handed over otherwise)."""
        if not self.handed_over.shared:
            return
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the store: the next sweep tries again, the claims' leases run out
                log.warning("handed-over machine ends: the sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(SWEEP_SECONDS)

    async def settled(self) -> None:
        """Waits for the ends in their grace and their finalisations (a test)."""
        while pending := set(self._waiting) | self._finalising:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        """The ends still in their grace are handed over to the store (finalised here without one, or when the
        store does not take them); the finalisations already under way are waited for, up to CLOSE_WAIT_SECONDS."""
        waiting = list(self._waiting.values())
        cancelled = list(self._waiting)
        for task in cancelled:
            task.cancel()
            self._waiting.pop(task, None)
        # A grace's start whose write is in flight lands first, so the hand-over below is the entry's last word.
        await asyncio.gather(*cancelled, return_exceptions=True)
        handed = await asyncio.gather(*(self._hand_over(session_id, grace_ends)
                                        for session_id, _, grace_ends in waiting))
        for (session_id, record, _), was_handed in zip(waiting, handed, strict=True):
            if not was_handed:
                self._later(session_id, record)
        if self._finalising:
            await asyncio.wait(set(self._finalising), timeout=CLOSE_WAIT_SECONDS)

    async def _hand_over(self, session_id: str, grace_ends: float) -> bool:
        """Whether another replica now finalises the session's end (False: none would, or the store did not
        take it; it is finalised here, from what it holds, counted rather than lost)."""
        if not self.handed_over.shared:
            return False
        try:
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                await self.handed_over.hand_over(session_id, grace_ends, self._recent.recalled(session_id))
        except Exception as exc:
            log.warning("session %s: its machine's end not handed over (%s): finalised now", session_id,
                        type(exc).__name__)
            return False
        return True


def _machine_end(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e.get("event") == EVENT), None)


def _identity(event: dict[str, Any]) -> tuple[Any, Any, Any]:
    return event.get("event"), event.get("at"), event.get("replica")
