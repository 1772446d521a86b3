"""The dispatcher's one decision that a session's machine is over, whoever saw it first: written once
to the session's timeline as `machine_ended` (its `state`, `ended` or `failed`, and the provider's
`detail`), where the automatic rollback, the smoke verdict and `GET /sessions` read it.

A bot that reports its own end says why on its channel; a machine that dies before its bot reports
(a crash at boot, a bot file gone, an image that cannot be pulled, a bot that exits without serving)
leaves only the provider's word. That word reaches the dispatcher three ways: a provider that sees
its machines end as they do tells at once (local processes, `ReportsEnds`); the reaper's sweep lists
every machine of the deployment; and any read of the session (`GET /sessions/{id}`, a start's
wait). Each is told here, and the first one, at any replica, is the one written (the coordination's
one-time record; this replica's own memory spares the store a call per sweep).

A machine that ends under a caller's stop is the caller's doing, not its release's: an end seen while
this replica's stop of it is under way (a local process's exit is told before its stop returns) is
written after the stop's own `stop_requested`, so whoever reads the timeline sees the stop. So is a
closing dispatcher's stop of its own bots (local processes, stopped after the sessions' service has
closed): ends seen from then on are not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator

from dispatcher.machines.base import Machine
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.coordination import OneTimeUse

log = logging.getLogger("dispatcher.sessions.machine_ends")

EVENT = "machine_ended"
REMEMBERED = 10_000  # sessions whose end this replica already passed on (a sweep lists them for an hour)
ONCE_SECONDS = 2 * 86_400.0  # longer than a provider lists an ended machine, and than a timeline is kept


class MachineEnds:
    def __init__(self, timeline: SessionTimeline, once: OneTimeUse) -> None:
        self._timeline = timeline
        self._once = once
        self._told: OrderedDict[str, None] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()
        self._stopping: dict[str, asyncio.Event] = {}  # sessions this replica is stopping: set when recorded
        self._closed = False  # the dispatcher is closing: what ends now, it stopped itself

    @contextlib.contextmanager
    def stopping(self, session_id: str) -> Iterator[None]:
        """A stop of the session under way here, until its `stop_requested` is noted: an end seen
        meanwhile waits for it."""
        recorded = self._stopping.setdefault(session_id, asyncio.Event())
        try:
            yield
        finally:
            if self._stopping.get(session_id) is recorded:
                del self._stopping[session_id]
            recorded.set()

    def observed(self, machine: Machine | None) -> None:
        """A machine as a provider showed it: an ended or failed one is written down, once per session."""
        if self._closed or machine is None or machine.state.is_active or machine.session_id in self._told:
            return
        self._told[machine.session_id] = None
        while len(self._told) > REMEMBERED:
            self._told.popitem(last=False)
        try:
            task = asyncio.get_running_loop().create_task(self._note(machine))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nobody left to tell
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _note(self, machine: Machine) -> None:
        stop = self._stopping.get(machine.session_id)
        if stop is not None:
            await stop.wait()
        try:
            first = await self._once.first_use(f"{EVENT}:{machine.session_id}", ONCE_SECONDS)
        except Exception as exc:  # the store: another sighting (the next sweep, a read) tells it again
            self._told.pop(machine.session_id, None)
            log.warning("session %s: its machine's end not recorded (%s)", machine.session_id, type(exc).__name__)
            return
        if first:
            self._timeline.note(machine.session_id, EVENT, state=machine.state.value, detail=machine.detail,
                                machine_id=machine.machine_id)

    async def settled(self) -> None:
        """Waits for the records under way (a test, or shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    def close(self) -> None:
        """The dispatcher is closing: the bots it stops from now on end by its doing, no release's."""
        self._closed = True
