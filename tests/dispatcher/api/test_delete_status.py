"""DELETE's status follows what the provider reports after the stop: 202 while the machine still
runs, 204 once it has stopped or is gone. An in-memory provider plays the slow stop."""

from __future__ import annotations

import dataclasses

import httpx

from dispatcher.app import create_app
from dispatcher.machines.base import Machine, MachineState
from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import Settings
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines


class SlowStop(ListedMachines):
    """Accepts a stop and keeps reporting the machine as running until `finish()`."""

    def finish(self) -> None:
        self.machines = [dataclasses.replace(m, state=MachineState.ENDED) for m in self.machines]


async def test_delete_is_202_while_the_machine_still_runs_then_204() -> None:
    machines = SlowStop([])
    app = create_app(Settings(reaper_interval_seconds=0), env={}, machines=machines, rooms=None)
    sid = new_session_id(app.state.voicefleet.auth.identify(None).owner_key, None)  # the caller's own session
    machines.machines = [Machine(sid, "m-1", MachineState.STARTED, created_at=0.0)]
    timeline = app.state.voicefleet.sessions.timeline
    timeline.note(sid, "requested")  # as its start wrote it: a session there was, once forgotten too
    await timeline.settled()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        assert (await api.delete(f"/sessions/{sid}")).status_code == 202
        machines.finish()
        assert (await api.delete(f"/sessions/{sid}")).status_code == 204
        machines.machines = []  # and once the provider has forgotten it
        assert (await api.delete(f"/sessions/{sid}")).status_code == 204
    assert machines.stops == [sid, sid, sid]
