"""The session service on an in-memory provider whose calls the test holds: what it leaves behind
when the dispatcher closes."""

from __future__ import annotations

import asyncio

from dispatcher.machines.base import Machine, MachineState
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.service import Session, SessionService
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.settings import Settings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines


class HeldList(ListedMachines):
    """Its list call (the admission recount) waits until released, and notes a cancellation."""

    def __init__(self, machines: list[Machine]) -> None:
        super().__init__(machines)
        self.listing = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = 0

    async def list(self) -> list[Machine]:
        self.listing.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().list()


async def test_closing_cancels_a_recount_still_waiting_for_the_provider() -> None:
    running = Machine(session_id="s" * 24, machine_id="m", state=MachineState.STARTED, created_at=0.0)
    machines = HeldList([running])
    coordination = LocalCoordination()
    service = SessionService(Settings(), machines, None, Metrics("memory"), coordination=coordination,
                             timeline=SessionTimeline(coordination.timelines, coordination.replica_id))
    await service.stop(running.session_id)  # a stop asks for a recount, in the background
    await asyncio.wait_for(machines.listing.wait(), 30)
    await service.aclose()
    assert machines.cancelled == 1  # not left calling the provider after the dispatcher closed


def test_a_sessions_repr_never_shows_the_callers_token() -> None:
    machine = Machine(session_id="s" * 24, machine_id="m", state=MachineState.STARTED, created_at=0.0)
    session = Session(machine, created=True, room_url="https://rooms.test/vf-s", user_token="secret-user-token")
    assert "secret-user-token" not in repr(session) and "secret-user-token" not in str(session)
