"""A sweep finalises a kept machine end (sessions/machine_end_grace.py) from the store's timeline when that holds
the end, else from the record the entry carries, written back to the timeline first (which the finalisers read);
an entry kept without a record (a replica of the previous format's) is finalised from the timeline alone, as
before."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.sessions.machine_end_grace import MachineEndGrace
from dispatcher.store.handed_over_ends import MemoryHandedOverEnds

SESSION = "s-kept-1"
REQUESTED = {"event": "requested", "at": 980.0, "release": "stable", "replica": "r-1"}
LAUNCHED = {"event": "launched", "at": 981.0, "machine_id": "m-1", "replica": "r-1"}
END = {"event": "machine_ended", "at": 990.0, "state": "ended", "replica": "r-1"}


class Scene:
    def __init__(self, timeline: list[dict[str, Any]]) -> None:
        self.timeline = timeline
        self.ends = MemoryHandedOverEnds(shared=True)  # the replicas' store's contract
        self.finalised: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
        self.grace = MachineEndGrace(self.read, self.ends, clock=lambda: 2_000.0, restore=self.restore)
        self.grace.finalisers.append(self.finalise)

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return list(self.timeline)

    async def restore(self, session_id: str, events: list[dict[str, Any]]) -> None:
        self.timeline.extend(events)

    async def finalise(self, session_id: str, record: Mapping[str, Any]) -> None:
        self.finalised.append((session_id, dict(record), list(self.timeline)))  # what the finalisers read


async def test_an_end_missing_from_the_timeline_is_finalised_from_its_record_written_back_first() -> None:
    scene = Scene([])
    await scene.ends.keep(SESSION, 1_000.0, [REQUESTED, LAUNCHED, END])
    assert await scene.grace.sweep() == 1
    assert scene.finalised == [(SESSION, END, [REQUESTED, LAUNCHED, END])]
    assert await scene.ends.record(SESSION) is None  # taken with its entry


async def test_a_timeline_that_holds_only_part_has_the_rest_written_back() -> None:
    scene = Scene([REQUESTED])
    await scene.ends.keep(SESSION, 1_000.0, [REQUESTED, LAUNCHED, END])
    assert await scene.grace.sweep() == 1
    assert scene.finalised == [(SESSION, END, [REQUESTED, LAUNCHED, END])]


async def test_the_timelines_own_end_wins_over_the_record() -> None:
    report = {"event": "ended", "at": 991.0, "reason": "peer_left", "replica": "r-2"}
    timeline_end = {**END, "detail": "the store's"}
    scene = Scene([REQUESTED, LAUNCHED, timeline_end, report])
    await scene.ends.keep(SESSION, 1_000.0, [REQUESTED, END])
    assert await scene.grace.sweep() == 1
    assert scene.finalised == [(SESSION, timeline_end, [REQUESTED, LAUNCHED, timeline_end, report])]


async def test_an_entry_kept_without_a_record_is_finalised_from_the_timeline_as_before() -> None:
    scene = Scene([REQUESTED, END])
    await scene.ends.keep(SESSION, 1_000.0)
    assert await scene.grace.sweep() == 1
    assert scene.finalised == [(SESSION, END, [REQUESTED, END])]
    empty = Scene([])
    await empty.ends.keep(SESSION, 1_000.0)
    assert await empty.grace.sweep() == 0 and empty.finalised == []  # nothing to finalise from (said)
    assert await empty.ends.due(3_000.0, 30.0, 10) == []  # and not offered again


async def test_the_owner_keeps_its_sessions_recent_events_with_the_end() -> None:
    scene = Scene([])
    for event in (REQUESTED, LAUNCHED, END):
        scene.grace.timeline_event(SESSION, event)
    await scene.grace.aclose()  # hands it over (the grace not over): its record goes with it
    assert await scene.ends.record(SESSION) == [REQUESTED, LAUNCHED, END]
