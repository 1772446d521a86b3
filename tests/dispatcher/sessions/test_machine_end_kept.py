"""A machine's end kept in the store from its grace's start (sessions/machine_end_grace.py): its live owner
finalises it once and no other replica's sweep takes it before the grace and its margin are over; an owner
lagging past the margin leaves it to the sweep that took it; a store that does not keep it leaves it finalised
by its owner alone, as with no store; and the store's own entry keeps the score its owner takes it back by."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dispatcher.app import create_app
from dispatcher.sessions import machine_end_grace
from dispatcher.sessions.machine_end_grace import LEASE_SECONDS, OWNER_MARGIN_SECONDS, MachineEndGrace
from dispatcher.settings import Settings
from dispatcher.store.handed_over_ends import MemoryHandedOverEnds
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.support.redis_server import redis_server

SESSION = "s-kept-1"
END = {"event": "machine_ended", "at": 990.0, "state": "ended"}
GRACE = 0.05


async def shared_timeline(session_id: str) -> list[dict[str, Any]]:
    return [END]


def replica(name: str, ends: MemoryHandedOverEnds, finalised: list[str], clock: Any = time.time) -> MachineEndGrace:
    grace = MachineEndGrace(shared_timeline, ends, clock=clock)

    async def finalise(session_id: str, record: Mapping[str, Any]) -> None:
        finalised.append(f"{name}:{session_id}")

    grace.finalisers.append(finalise)
    return grace


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine_end_grace, "MACHINE_END_GRACE_SECONDS", GRACE)


async def test_a_live_owners_end_is_finalised_once_and_not_swept_before_its_margin() -> None:
    ends, finalised = MemoryHandedOverEnds(shared=True), []
    owner, other = replica("owner", ends, finalised), replica("other", ends, finalised)
    owner.timeline_event(SESSION, END)
    await asyncio.sleep(0)  # its grace has begun: the end is kept (the memory's keep never waits)
    other.clock = lambda: time.time() + GRACE + 1.0  # the other's sweep past the grace, within the margin
    assert await other.sweep() == 0, "another replica took a live owner's end before its margin"
    await owner.settled()
    other.clock = lambda: time.time() + GRACE + OWNER_MARGIN_SECONDS + LEASE_SECONDS + 1.0
    assert await other.sweep() == 0  # the owner removed it once finalised
    assert finalised == [f"owner:{SESSION}"]


async def test_an_owner_lagging_past_its_margin_leaves_its_end_to_the_sweep_that_took_it() -> None:
    ends, finalised = MemoryHandedOverEnds(shared=True), []
    owner = replica("owner", ends, finalised)
    other = replica("other", ends, finalised, clock=lambda: time.time() + GRACE + OWNER_MARGIN_SECONDS + 1.0)
    owner.timeline_event(SESSION, END)
    await asyncio.sleep(0)
    assert await other.sweep() == 1  # the owner's loop stalled past the margin: the sweep takes it
    await owner.settled()  # the owner's grace ends: its entry is no longer the one it wrote
    assert finalised == [f"other:{SESSION}"]


async def test_an_end_the_store_does_not_keep_at_its_grace_start_is_finalised_by_its_owner(
        caplog: pytest.LogCaptureFixture) -> None:
    class Refusing(MemoryHandedOverEnds):  # the store down as the grace begins
        async def keep(self, session_id: str, kept_until: float) -> None:
            raise StoreUnavailable("the store did not answer")

    finalised: list[str] = []
    owner = replica("owner", Refusing(shared=True), finalised)
    with caplog.at_level(logging.WARNING, logger="dispatcher.sessions.machine_end_grace"):
        owner.timeline_event(SESSION, END)
        await owner.settled()
    assert finalised == [f"owner:{SESSION}"]
    assert "not kept in the store" in caplog.text


async def test_the_stores_kept_entry_is_taken_back_by_the_score_its_owner_wrote_and_moved_forward_at_a_close(
        tmp_path: Path) -> None:
    with redis_server(tmp_path) as store:
        app = create_app(Settings(reaper_interval_seconds=0), env=store.env, machines=ListedMachines([]), rooms=None)
        state = app.state.voicefleet
        try:
            assert state.machine_end_grace is not None
            ends = state.machine_end_grace.handed_over
            kept_until = time.time() + 3.0 + OWNER_MARGIN_SECONDS  # an epoch float, as the owner writes it
            await ends.keep(SESSION, kept_until)
            await ends.keep(SESSION, kept_until + 5.0)  # a second keep never moves it
            assert await ends.due(kept_until - 0.001, LEASE_SECONDS, 10) == []  # its owner's until then
            assert not await ends.take_own(SESSION, kept_until + 5.0, kept_until + LEASE_SECONDS)
            assert await ends.take_own(SESSION, kept_until, kept_until + LEASE_SECONDS)
            assert not await ends.take_own(SESSION, kept_until, kept_until + LEASE_SECONDS)  # held: not twice
            await ends.done(SESSION)
            await ends.keep(SESSION, kept_until)
            await ends.hand_over(SESSION, kept_until - OWNER_MARGIN_SECONDS)  # a close: due at the grace's end
            assert await ends.due(kept_until - OWNER_MARGIN_SECONDS, LEASE_SECONDS, 10) == [SESSION]
            assert store.refused() == []
        finally:
            await state.aclose()
