"""A placed call's outcome told again (the SIP edge tries its POST again when no answer came within its bound, a
carrier's status callback retried) is noted once: its `ended` is one of the few a session's timeline keeps of that
kind (dispatcher/store/timelines.py), and a copy of it would take the room its bot's own `ended`, which carries the
bot's usage, needs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dispatcher.api.call_outcomes import ended_unstarted, record_outcome
from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.support.redis_server import redis_server


async def test_an_outcome_told_four_times_is_noted_once_and_the_bots_end_still_kept() -> None:
    app = create_app(Settings(), env={"RESERVE_MAX_IDLE": "0"}, machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    timeline = state.sessions.timeline
    try:
        for _ in range(4):
            await record_outcome(state, "s-busy", "busy", trunk="far")
        timeline.note("s-busy", "ended", reason="bot_done", usage=[{"service": "llm", "seconds": 3}])
        for _ in range(3):
            await ended_unstarted(state, "s-unplaced", trunk="far", detail="no route")
        await timeline.settled()
        busy = [(e["event"], e.get("reason")) for e in await timeline.read("s-busy")]
        assert busy == [("requested", None), ("call_outcome", None), ("ended", "busy"), ("ended", "bot_done")], busy
        unplaced = [(e["event"], e.get("reason")) for e in await timeline.read("s-unplaced")]
        assert unplaced == [("requested", None), ("ended", "not_placed")], unplaced
    finally:
        await state.aclose()


async def test_an_outcome_told_at_once_at_two_replicas_of_one_store_is_noted_once(tmp_path: Path) -> None:
    """The edge's retry of a call's `busy` reaching one replica while its first try is still at another: both
    read a timeline without the outcome before either noted it. The store's once-mark lets one note it."""
    with redis_server(tmp_path) as store:
        apps = [create_app(Settings(bot_channel_token="t" * 40), env={**store.env, "RESERVE_MAX_IDLE": "0"},
                           machines=LocalMachines(LocalSettings()), rooms=None) for _ in range(2)]
        states = [app.state.voicefleet for app in apps]
        try:
            for _ in range(3):
                await asyncio.gather(*(record_outcome(state, "s-busy", "busy", trunk="far") for state in states))
            for state in states:
                await state.sessions.timeline.settled()
            events = [(e["event"], e.get("reason")) for e in await states[1].sessions.timeline.read("s-busy")]
            assert events.count(("call_outcome", None)) == 1 and events.count(("ended", "busy")) == 1, events
        finally:
            for state in states:
                await state.aclose()
