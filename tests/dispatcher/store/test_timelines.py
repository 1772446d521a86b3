"""One process's session timelines (`MemoryTimelines`): bounded in sessions, the oldest forgotten."""

from __future__ import annotations

import pytest

from dispatcher.store.timelines import MemoryTimelines


async def test_past_the_session_bound_the_oldest_timeline_is_forgotten_and_the_rest_kept() -> None:
    timelines = MemoryTimelines(max_sessions=2)
    for session_id in ("s-1", "s-2", "s-3"):
        await timelines.append(session_id, {"event": "requested", "session": session_id})
    assert await timelines.read("s-1") == []  # the oldest
    assert await timelines.read("s-2") == [{"event": "requested", "session": "s-2"}]  # exactly the bound kept
    assert await timelines.read("s-3") == [{"event": "requested", "session": "s-3"}]


async def test_a_session_written_to_again_is_the_newest_and_outlives_older_ones() -> None:
    timelines = MemoryTimelines(max_sessions=2)
    await timelines.append("s-1", {"event": "requested"})
    await timelines.append("s-2", {"event": "requested"})
    await timelines.append("s-1", {"event": "ready"})  # s-1 is now the newest
    await timelines.append("s-3", {"event": "requested"})
    assert await timelines.read("s-2") == []
    assert await timelines.read("s-1") == [{"event": "requested"}, {"event": "ready"}]


async def test_a_timeline_keeps_its_head_then_its_newest_events_up_to_its_bound() -> None:
    timelines = MemoryTimelines(max_events=4, head_events=2)
    await timelines.append("s-1", {"event": "requested"})
    for n in range(5):
        await timelines.append("s-1", {"n": n})
    assert await timelines.read("s-1") == [{"event": "requested"}, {"n": 0}, {"n": 3}, {"n": 4}]


def test_a_head_is_at_least_the_opening_and_leaves_room_for_the_newest() -> None:
    for head in (0, 4):
        with pytest.raises(ValueError):
            MemoryTimelines(max_events=4, head_events=head)


async def test_a_timeline_is_forgotten_once_its_time_is_up() -> None:
    timelines = MemoryTimelines(keep_seconds=0.0)
    await timelines.append("s-1", {"event": "requested"})
    assert await timelines.read("s-1") == []
