"""A session machine's end, as any provider showed it, written once to the session's timeline
(dispatcher/sessions/machine_ends.py): however often, and at however many replicas, it is seen."""

from __future__ import annotations

from dispatcher.machines.base import Machine, MachineState
from dispatcher.sessions.machine_ends import MachineEnds
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.memory import LocalOnce
from dispatcher.store.timelines import MemoryTimelines


def machine(session_id: str, state: MachineState, detail: str | None = None) -> Machine:
    return Machine(session_id=session_id, machine_id=f"pid-{session_id}", state=state, created_at=1.0, detail=detail)


async def test_a_machine_that_failed_is_written_once_with_the_providers_word() -> None:
    timeline = SessionTimeline(MemoryTimelines(), "r-a")
    ends = MachineEnds(timeline, LocalOnce())
    for session_id in ("s-1", "s-2"):
        timeline.note(session_id, "requested", release="next")
    for _ in range(3):  # the provider's push, a reaper's sweep, a client's read
        ends.observed(machine("s-1", MachineState.FAILED, "exit code 1"))
    ends.observed(machine("s-2", MachineState.STARTED))
    await ends.settled()
    await timeline.settled()
    events = await timeline.read("s-1")
    assert [(e["event"], e.get("state"), e.get("detail")) for e in events] == [
        ("requested", None, None), ("machine_ended", "failed", "exit code 1")]
    assert [e["event"] for e in await timeline.read("s-2")] == ["requested"]  # a live machine has not ended


async def test_two_replicas_that_both_see_the_end_write_it_once() -> None:
    shared = MemoryTimelines()
    once = LocalOnce()  # the coordination's one-time record, as the store's is for every replica
    a, b = SessionTimeline(shared, "r-a"), SessionTimeline(shared, "r-b")
    a.note("s-1", "requested", release="next")
    for timeline in (a, b):
        ends = MachineEnds(timeline, once)
        ends.observed(machine("s-1", MachineState.ENDED, "exit code 0"))
        await ends.settled()
        await timeline.settled()
    assert [e["event"] for e in await a.read("s-1")] == ["requested", "machine_ended"]
