"""A hostile review of the handed-over machine ends (sessions/machine_end_grace.py): a sweep whose finaliser
failed (a store blip while the usage is added or `session.ended` is written), or whose timeline read met the
store down, keeps the entry: its lease runs out and a sweep offers it again, so that end is counted and pushed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dispatcher.app import create_app
from dispatcher.sessions.machine_end_grace import LEASE_SECONDS, MachineEndGrace
from dispatcher.settings import Settings
from dispatcher.store.handed_over_ends import MemoryHandedOverEnds
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.support.redis_server import redis_server

SESSION = "s-handed-1"


async def test_a_handed_over_end_whose_finaliser_failed_is_offered_again_after_its_lease() -> None:
    now = [1_000.0]
    ends = MemoryHandedOverEnds(shared=True)  # the replicas' store's contract (store/handed_over_ends.py)

    async def timeline(session_id: str) -> list[dict[str, Any]]:
        return [{"event": "machine_ended", "at": 990.0, "state": "ended"}]

    grace = MachineEndGrace(timeline, ends, clock=lambda: now[0])
    tries: list[str] = []

    async def usage_then_blip(session_id: str, record: Mapping[str, Any]) -> None:
        tries.append(session_id)
        if len(tries) == 1:
            raise StoreUnavailable("the store failed over while the end was added")

    grace.finalisers.append(usage_then_blip)
    await ends.hand_over(SESSION, 997.0)  # a closing replica's, its grace over by now
    await grace.sweep()
    now[0] += LEASE_SECONDS + 1.0  # past the claim's lease: any replica's sweep may take it again
    await grace.sweep()
    assert tries == [SESSION, SESSION], "the failed finalisation was never tried again"


async def test_a_sweep_whose_timeline_read_fails_keeps_the_handed_over_end(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store:
        app = create_app(Settings(reaper_interval_seconds=0), env=store.env, machines=ListedMachines([]), rooms=None)
        state = app.state.voicefleet
        try:
            timeline = state.sessions.timeline
            timeline.note(SESSION, "requested", release="stable")  # written to the store, as another replica's
            timeline.note(SESSION, "machine_ended", at=time.time(), state="ended")
            await timeline.settled()
            grace = state.machine_end_grace
            assert grace is not None
            now = [time.time() + 10.0]
            grace.clock = lambda: now[0]
            # The handed-over set itself answered (a stand-in for it); the timeline's read meets the store down.
            grace.handed_over = MemoryHandedOverEnds(shared=True)
            await grace.handed_over.hand_over(SESSION, now[0] - 5.0)
            store.stop()
            with contextlib.suppress(StoreUnavailable):  # a sweep may say so (`run` logs it and sweeps again)
                await grace.sweep()
            now[0] += LEASE_SECONDS + 1.0
            assert await grace.handed_over.due(now[0], LEASE_SECONDS, 10) == [SESSION], "the end was dropped"
        finally:
            await state.aclose()
