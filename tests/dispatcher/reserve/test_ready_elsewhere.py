"""Timing a cold start from its timeline where its bot's `ready` lands at another replica: from
the start's `requested` event, once per session, and never a start older than the records kept."""

from __future__ import annotations

import asyncio

from dispatcher.reserve.ready_elsewhere import TimedStart, seconds_to_ready
from dispatcher.store.timelines import MemoryTimelines


async def _timeline(*events: dict[str, object]) -> MemoryTimelines:
    timelines = MemoryTimelines()
    for event in events:
        await timelines.append("s", event)
    return timelines


def test_the_start_is_timed_from_its_requested_event_to_now() -> None:
    async def run() -> TimedStart | None:
        timelines = await _timeline({"event": "requested", "at": 1000.0, "release": "next"},
                                    {"event": "launched", "at": 1000.2}, {"event": "ready", "at": 1003.5})
        return await seconds_to_ready(timelines, "s", reported_at=1003.5, now=1003.6, within=600)

    assert asyncio.run(run()) == (1003.6 - 1000.0, "next")  # its release labels the metric


def test_a_second_ready_an_unknown_session_and_an_old_start_are_not_timed() -> None:
    async def run() -> list[TimedStart | None]:
        timelines = await _timeline({"event": "requested", "at": 1000.0}, {"event": "ready", "at": 1003.5},
                                    {"event": "ready", "at": 1009.0})
        return [await seconds_to_ready(timelines, "s", reported_at=1009.0, now=1009.1, within=600),
                await seconds_to_ready(timelines, "other", reported_at=1003.5, now=1003.6, within=600),
                await seconds_to_ready(timelines, "s", reported_at=1003.5, now=1700.0, within=600)]

    assert asyncio.run(run()) == [None, None, None]
