"""DELETE's status follows what the provider reports after the stop: 202 while the machine still
runs, 204 once it has stopped or is gone. An in-memory provider plays the slow stop. However many
DELETEs reach a session, its timeline notes one `stop_requested`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx

from dispatcher.app import create_app
from dispatcher.machines.base import Machine, MachineState
from dispatcher.observability.sip_end import SIP_ENDED
from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import Settings
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.support.redis_server import redis_server


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


async def test_a_finished_calls_repeated_deletes_note_one_stop_and_keep_its_end_on_its_timeline() -> None:
    """A provider's stop answers True for a machine already over, so every DELETE reached the stop: each
    noted another `stop_requested`, and a client's loop of them pushed the call's end (`sip_ended`, its
    counted minutes; `ended`) out of the timeline its usage, cost and report are read from."""
    machines = SlowStop([])
    app = create_app(Settings(reaper_interval_seconds=0), env={}, machines=machines, rooms=None)
    sid = new_session_id(app.state.voicefleet.auth.identify(None).owner_key, None)
    machines.machines = [Machine(sid, "m-1", MachineState.ENDED, created_at=0.0)]  # the call is over
    timeline = app.state.voicefleet.sessions.timeline
    timeline.note(sid, "requested")
    for n in range(20):  # a call's worth of events: its end lies past the timeline's kept opening
        timeline.note(sid, "reported", n=n)
    timeline.note(sid, SIP_ENDED, by="caller", how="bye", answered_seconds=61.0)
    timeline.note(sid, "ended", reason="caller_hung_up")
    await timeline.settled()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        for _ in range(70):
            assert (await api.delete(f"/sessions/{sid}")).status_code == 204
    await timeline.settled()
    events = await timeline.read(sid)
    assert len(machines.stops) == 70  # each one still reached the provider: only its note is once
    [stop] = [e for e in events if e["event"] == "stop_requested"]
    assert stop["machine_running"] is False  # the first stop's word, as the release judge reads it
    kinds = [e["event"] for e in events]
    assert kinds[0] == "requested" and {SIP_ENDED, "ended", "machine_ended"} <= set(kinds)
    assert [e["answered_seconds"] for e in events if e["event"] == SIP_ENDED] == [61.0]
    # One process remembers its own stops: no claim of the table every other first claim shares is taken.
    assert await app.state.voicefleet.replication.coordination.key_holders.held(f"stop_requested:{sid}") is None


async def test_deletes_at_two_replicas_of_one_store_note_one_stop(tmp_path: Path) -> None:
    """The once-mark is the store's: a finished call's session deleted again and again at two replicas sharing a
    redis-server (as the store user the stacks make) has one `stop_requested`, whichever took the first."""
    machines = SlowStop([])
    with redis_server(tmp_path) as store:
        # One deployment: the replicas share its secret, so its keyless caller's sessions are the same at each.
        apps = [create_app(Settings(reaper_interval_seconds=0, bot_channel_token="t" * 40), env=store.env,
                           machines=machines, rooms=None) for _ in range(2)]
        sid = new_session_id(apps[0].state.voicefleet.auth.identify(None).owner_key, None)
        machines.machines = [Machine(sid, "m-1", MachineState.ENDED, created_at=0.0)]
        timeline = apps[0].state.voicefleet.sessions.timeline
        timeline.note(sid, "requested")
        await timeline.settled()
        try:
            for app in (*apps, *apps, *apps):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                             base_url="http://127.0.0.1") as api:
                    answer = await api.delete(f"/sessions/{sid}")
                    assert answer.status_code == 204, answer.text
            for app in apps:
                await app.state.voicefleet.sessions.timeline.settled()
            events = await apps[1].state.voicefleet.sessions.timeline.read(sid)
            assert [e["event"] for e in events].count("stop_requested") == 1, events
            assert len(machines.stops) == 6  # each reached the provider: only the note is once
        finally:
            for app in apps:
                await app.state.voicefleet.aclose()
