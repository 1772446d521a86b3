"""A create whose answer was lost: the one reconcile every provider's launch goes through.

A create that timed out, or that the provider answered with a 5xx, may still make its machine,
seconds later (Cloud Run's `jobs.run` and ARM's PUT are done server-side after the answer is
gone). Answering the client "unavailable" while that machine boots would leave a bot running for
a start that was refused. So a launch whose create gave up that way does not answer yet: it looks
the session's machine up (by its name or tag, the provider's own `status`), a few times with
backoff, since it may appear late. Seen and active: the create worked, the launch adopts it. Seen
and ended: the start is refused and the machine removed. Not seen: the start is refused, and the
look goes on in the background for a while longer (`WATCH_PAUSES`), removing the machine if it
appears. A new launch of the session on this replica stops that watch first: it looks for the
machine itself and adopts what it finds, and if it fails in any way (even making nothing), looks
and watches on for the earlier create's. A new start of the session at another replica (a client's
retry behind a load balancer) may adopt that machine or make its own, and a keyed retry may be
answered with it (a replay): the watch asks `retried_since` (the session's timeline, which every
replica shares) and leaves the machine to that start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dispatcher.machines.base import LaunchResult, Machine, MachinesError

log = logging.getLogger("dispatcher.machines.lost_creates")
T = TypeVar("T")

# Pauses between looks before the launch answers (about 7 s in all), and after a refusal (about
# two minutes more: past any provider's seen delay between a create's answer and its machine).
LOOK_PAUSES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
WATCH_PAUSES: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 30.0, 60.0)


def maybe_made(exc: MachinesError) -> bool:
    """A failure after which the provider may still make the machine (or has made it): a lost
    answer or a 5xx, or a 409 whose machine could not be looked up (`<provider>_unavailable`). A
    429, a refusal, a local limit or a create never sent (its sign-in failed first) made nothing,
    and is answered without looking."""
    return exc.reason.endswith("_unavailable") and not exc.nothing_sent


async def found_after_conflict(provider: str, name: str, look: Awaitable[T | None]) -> T:
    """The look-up that follows a create answered 409 (the name is taken: the session's machine
    exists, a replay's or this very create's, its first try served and its answer lost). A look
    that fails (a list throttled) or does not show it yet is `<provider>_unavailable`, never a
    reason read as "made nothing": the machine may be this launch's, so it is looked for again,
    and removed if the start is refused."""
    try:
        found = await look
    except MachinesError as exc:
        raise MachinesError(f"{provider}_unavailable", f"{name} exists, but looking it up failed: {exc}",
                            retry_after=exc.retry_after or 1.0) from exc
    if found is None:
        raise MachinesError(f"{provider}_unavailable", f"{name} exists but was not found yet; try again",
                            retry_after=1.0)
    return found


class LostCreates:
    def __init__(self, status: Callable[[str], Awaitable[Machine | None]],
                 stop: Callable[[str], Awaitable[bool]]) -> None:
        """`status`/`stop`: the provider's own look-up and removal of a session's machine."""
        self._status, self._stop = status, stop
        self.look_pauses, self.watch_pauses = LOOK_PAUSES, WATCH_PAUSES
        self._watches: dict[str, asyncio.Task[None]] = {}
        # Whether the session was asked for again after the refusal (epoch seconds), anywhere in the
        # deployment; set by the sessions layer. Unset: only this replica's own new launch counts.
        self.retried_since: Callable[[str, float], Awaitable[bool]] | None = None

    async def create(self, session_id: str, create: Callable[[], Awaitable[LaunchResult]]) -> LaunchResult:
        """`create()`, reconciled when its answer was lost (see the module's docstring)."""
        watched = await self._unwatch(session_id)
        try:
            return await create()
        except MachinesError as exc:
            # An earlier lost create's watch, stopped for this launch, is taken over whatever this one's failure:
            # a create that made nothing (never sent, refused) says nothing of the earlier one's machine.
            if not maybe_made(exc) and not watched:
                raise
            lost = exc
        for pause in self.look_pauses:
            await asyncio.sleep(pause)
            if (machine := await self._look(session_id)) is None:
                continue
            if machine.state.is_active:
                log.info("session %s: its create's answer was lost; adopting machine %s", session_id,
                         machine.machine_id)
                return LaunchResult(machine, created=True)
            await self._remove(session_id)
            raise lost
        refused_at = time.time()
        self._watches[session_id] = asyncio.create_task(self._watch(session_id, refused_at),
                                                        name=f"lost-create-{session_id}")
        raise lost

    async def _look(self, session_id: str) -> Machine | None:
        try:
            return await self._status(session_id)
        except MachinesError as exc:  # a look that failed is a look that saw nothing: the next one may
            log.warning("session %s: looking for a lost create's machine failed: %s", session_id, exc)
            return None

    async def _remove(self, session_id: str) -> bool:
        try:
            return await self._stop(session_id)
        except MachinesError as exc:
            log.warning("session %s: removing a refused start's machine failed (the reaper will): %s",
                        session_id, exc)
            return False

    async def _watch(self, session_id: str, refused_at: float) -> None:
        """After a refusal: the machine a lost create makes late is removed when it appears, unless
        the session was asked for again since (that start owns whatever machine it has)."""
        try:
            for pause in self.watch_pauses:
                await asyncio.sleep(pause)
                machine = await self._look(session_id)
                if machine is None or not machine.state.is_active:
                    continue
                if await self._retried(session_id, refused_at):
                    log.info("session %s: asked for again since its start was refused; machine %s is that "
                             "start's", session_id, machine.machine_id)
                    return
                if await self._remove(session_id):
                    log.warning("session %s: removed machine %s, made by a create whose start was refused",
                                session_id, machine.machine_id)
                    return
        finally:
            if self._watches.get(session_id) is asyncio.current_task():
                del self._watches[session_id]

    async def _retried(self, session_id: str, refused_at: float) -> bool:
        if self.retried_since is None:
            return False
        try:
            return await self.retried_since(session_id, refused_at)
        except Exception as exc:  # the store out of reach: keep the machine; the reaper bounds it
            log.warning("session %s: could not tell whether its start was retried (%s); machine kept",
                        session_id, exc)
            return True

    async def _unwatch(self, session_id: str) -> bool:
        """Stops the session's watch; whether it had one."""
        if (task := self._watches.pop(session_id, None)) is None:
            return False
        task.cancel()
        await asyncio.wait({task})
        return True

    async def aclose(self) -> None:
        for session_id in list(self._watches):
            await self._unwatch(session_id)
