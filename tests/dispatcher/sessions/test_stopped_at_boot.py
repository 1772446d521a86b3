"""A caller's stop (or a closing dispatcher's stop of its own bots) is no failure of the release,
even when the stop ends the machine before its bot was ready: the real session service, the real
judge and timelines, on an in-memory provider whose stop ends the machine and tells its end before
the stop returns (as local processes do).

Without care, the machine's end reached the judge before the stop was written down, and a session
stopped at boot counted as a start that failed: a client key that DELETE-d each session the draw
gave the canary rolled back a healthy release."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.machines.base import Machine, MachineState
from dispatcher.observability.metrics import Metrics
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.health import ReleaseHealth
from dispatcher.releases.live import LiveReleases
from dispatcher.sessions import release_watch
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.sessions.release_watch import ReleaseWatch
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.settings import Settings
from dispatcher.store.local import LocalCoordination
from dispatcher.store.release_samples import MemoryReleaseSamples
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.support.releases import release_env

SESSION = "b" * 24


class EndsAsItStops(ListedMachines):
    """As local processes do (`ReportsEnds`): the process's watcher tells the end listeners as it
    exits, and the stop returns once that watcher is done (machines/local/provider.py)."""

    def __init__(self, machines: list[Machine]) -> None:
        super().__init__(machines)
        self.end_listeners: list[Callable[[Machine], None]] = []

    async def stop(self, session_id: str) -> bool:
        stopped = await super().stop(session_id)
        watcher = asyncio.create_task(self._exited(session_id))
        await asyncio.wait_for(asyncio.shield(watcher), 30)
        return stopped

    async def _exited(self, session_id: str) -> None:
        for n, machine in enumerate(self.machines):
            if machine.session_id == session_id and machine.state.is_active:
                self.machines[n] = ended = replace(machine, state=MachineState.ENDED, detail="stopped")
                for listener in self.end_listeners:
                    listener(ended)


async def _judged(tmp_path: Path, machines: ListedMachines, *events: str,
                  ) -> tuple[SessionService, SessionTimeline, ReleaseWatch, MemoryReleaseSamples]:
    """The real session service over `machines`, its timeline judged by the real release watch: a
    canary session drawn by weight, with `events` on its timeline."""
    coordination = LocalCoordination()
    timeline = SessionTimeline(coordination.timelines, coordination.replica_id)
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), coordination.releases)
    await releases.refresh()
    service = SessionService(Settings(), machines, None, Metrics("memory"), coordination=coordination,
                             timeline=timeline, releases=releases)
    samples = MemoryReleaseSamples()
    watch = ReleaseWatch(releases, SharedSample(ReleaseHealth(), samples), timeline.read)
    timeline.listeners.append(watch.timeline_event)
    timeline.note(SESSION, "requested", release="next", release_chosen_by="weight")
    for event in events:
        timeline.note(SESSION, event)
    await timeline.settled()
    return service, timeline, watch, samples


async def _stop(service: SessionService, timeline: SessionTimeline, watch: ReleaseWatch) -> None:
    """The caller's stop, and everything it set off written down and judged."""
    await service.stop(SESSION)
    await service.ends.settled()
    await timeline.settled()
    await watch.settled()


async def test_a_session_its_caller_stops_before_its_bot_is_ready_is_no_failure_of_its_release(
        tmp_path: Path) -> None:
    booting = Machine(session_id=SESSION, machine_id="m-1", state=MachineState.STARTING, created_at=0.0)
    machines = EndsAsItStops([booting])
    service, timeline, watch, samples = await _judged(tmp_path, machines, "launched")
    machines.end_listeners.append(service.ends.observed)
    await _stop(service, timeline, watch)

    events = [e["event"] for e in await timeline.read(SESSION)]
    assert "machine_ended" in events and "stop_requested" in events, events
    failures = [entry[1] for _, entry in (await samples.read("next", 0)).entries]
    assert "failed to start" not in failures, failures
    await service.aclose()


async def test_the_bots_a_closing_dispatcher_stops_are_no_failures_of_their_releases(tmp_path: Path) -> None:
    """A closing dispatcher stops its own bots after its sessions' service has closed (local processes:
    api/state.py): their ends are the dispatcher's doing, not their releases'."""
    booting = Machine(session_id=SESSION, machine_id="m-1", state=MachineState.STARTING, created_at=0.0)
    machines = EndsAsItStops([booting])
    coordination = LocalCoordination()
    timeline = SessionTimeline(coordination.timelines, coordination.replica_id)
    service = SessionService(Settings(), machines, None, Metrics("memory"), coordination=coordination,
                             timeline=timeline)
    machines.end_listeners.append(service.ends.observed)
    timeline.note(SESSION, "requested", release="next", release_chosen_by="weight")
    await service.aclose()
    await machines.stop(SESSION)  # the provider's own close, after the service's
    await service.ends.settled()
    await timeline.settled()
    assert [e["event"] for e in await timeline.read(SESSION)] == ["requested"]


async def test_a_stop_of_a_machine_its_bot_crashed_leaves_the_crash_a_failure_of_its_release(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The canary's bot crashed; its caller's client stops the session as the call goes dead, and the
    provider's stop answers True for the machine already over (as Fly's and local processes' do).
    The stop says the machine no longer ran, so its end is the bot's failure, not the caller's stop."""
    monkeypatch.setattr(release_watch, "REPORT_GRACE_SECONDS", 0.05)
    monkeypatch.setattr(release_watch, "STOPPED_LOOKS_SECONDS", (0.05, 0.1, 0.5, 2.0))
    crashed = Machine(session_id=SESSION, machine_id="m-1", state=MachineState.FAILED, created_at=0.0,
                      detail="exit code 1")
    service, timeline, watch, samples = await _judged(tmp_path, ListedMachines([crashed]), "launched", "ready",
                                                      "joined")
    await _stop(service, timeline, watch)

    events = await timeline.read(SESSION)
    [stop] = [e for e in events if e["event"] == "stop_requested"]
    assert stop["machine_running"] is False and any(e["event"] == "machine_ended" for e in events), events
    failures = [entry[1] for _, entry in (await samples.read("next", 0)).entries]
    assert failures == ["bot error"], failures
    await service.aclose()
