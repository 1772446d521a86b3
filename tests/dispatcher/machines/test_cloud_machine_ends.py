"""A cloud machine that dies before its bot reports is seen by the dispatcher without any word from the
provider as it happens (only local processes tell their exit): by the reaper's sweep, which lists it,
and by a read of the session. Either writes the timeline's one `machine_ended`, which judges the
session for its release (dispatcher/sessions/machine_ends.py). Each provider against its fake."""

from __future__ import annotations

import pytest

from dispatcher.machines.base import Machines
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from dispatcher.sessions.release_outcome import outcome_of
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.settings import Settings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.conftest import harness_for
from tests.dispatcher.machines.harness import Harness
from tests.dispatcher.machines.test_contract import spec

CLOUDS = ["ecs", "gce", "fly"]


@pytest.fixture(params=CLOUDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request)


async def _dead_at_boot(harness: Harness, machines: Machines, timeline: SessionTimeline) -> str:
    """A session drawn for the canary `next` whose machine failed before its bot dialled in."""
    s = spec()
    launched = await machines.launch(s)
    timeline.note(s.session_id, "requested", release="next", release_chosen_by="weight")
    timeline.note(s.session_id, "launched", machine_id=launched.machine.machine_id)
    await harness.move(s.session_id, "ended" if harness.name == "gce" else "failed")  # a VM has no exit code
    return s.session_id


async def _judged(timeline: SessionTimeline, session_id: str) -> tuple[list[str], str | None]:
    await timeline.settled()
    events = await timeline.read(session_id)
    outcome = outcome_of(events)
    return [e["event"] for e in events], outcome.failure if outcome is not None else None


async def test_the_reapers_sweep_and_a_read_each_write_a_dead_cloud_machines_end(harness: Harness) -> None:
    machines = harness.make()
    coordination = LocalCoordination()
    timeline = SessionTimeline(coordination.timelines, coordination.replica_id)
    service = SessionService(Settings(), machines, None, Metrics("memory"), coordination=coordination,
                             timeline=timeline)
    try:
        swept = await _dead_at_boot(harness, machines, timeline)
        reaper = Reaper(machines, None, Metrics("memory"), max_session_seconds=600,
                        settings=ReaperSettings(grace_seconds=0), ended=service.ends.observed)
        await reaper.sweep()  # before the second session exists: only a read can see that one
        read = await _dead_at_boot(harness, machines, timeline)
        assert (await service.get(read)) is not None  # GET /sessions/{id}
        await service.ends.settled()
        assert await _judged(timeline, swept) == (["requested", "launched", "machine_ended"], "failed to start")
        assert await _judged(timeline, read) == (["requested", "launched", "machine_ended"], "failed to start")
    finally:
        await service.aclose()
        await machines.aclose()
