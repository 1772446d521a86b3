"""The sessions running in the deployment, for `GET /status` and `GET /releases`' counts. A cloud
provider lists the region's machines; local bots are each replica's own processes, so with several
replicas each publishes its own list (dispatcher/store/live_sessions.py) and the count is every
replica's, this one's from its own list and the others' from theirs."""

from __future__ import annotations

import logging

from dispatcher.machines.base import Machine, Machines, MachineState
from dispatcher.machines.local.shared import SharedLocalMachines
from dispatcher.store.live_sessions import StoreLiveSessions
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.api.status")


class RunningEverywhere:
    def __init__(self, machines: Machines, live: StoreLiveSessions | None) -> None:
        self._machines = machines
        self._live = live if isinstance(machines, SharedLocalMachines) else None
        self._unread = False  # the store did not answer the last read (said once, not at every count)

    @property
    def publishes(self) -> bool:
        return self._live is not None

    async def publish(self) -> None:
        """This replica's own running sessions, for the others' counts (raises `StoreUnavailable`)."""
        if self._live is not None:
            own = [m for m in await self._machines.list() if m.state.is_active]
            await self._live.publish((m.session_id, m.release, m.state.value) for m in own)

    async def running(self) -> tuple[list[Machine], bool]:
        """The active sessions, and whether they are the deployment's (False: this replica's alone,
        local bots whose other replicas' lists the store did not give). Raises `ProviderError`."""
        own = [m for m in await self._machines.list() if m.state.is_active]
        if not isinstance(self._machines, SharedLocalMachines):
            return own, True
        if self._live is None:
            return own, False
        try:
            published = await self._live.read()
        except StoreUnavailable as exc:
            if not self._unread:
                log.info("running sessions counted at this replica alone: the store did not answer (%s)", exc)
            self._unread = True
            return own, False
        self._unread = False
        seen = {m.session_id for m in own}
        running = list(own)
        for replica, listed in sorted(published.items()):
            if replica == self._live.replica_id:
                continue  # this replica's own: its list now, not the one it published
            for session_id, release, state in listed:
                if session_id not in seen and state in _ACTIVE:  # a claim moving it: counted once
                    seen.add(session_id)
                    running.append(Machine(session_id, "", MachineState(state), 0.0, release=release))
        return running, True


_ACTIVE = {state.value for state in MachineState if state.is_active}
