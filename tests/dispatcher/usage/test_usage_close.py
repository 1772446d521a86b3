"""A closing dispatcher's usage count: the additions in flight are waited for (up to its bound), and, with
no store to hand it to (one process), a machine's end still in its grace is added at once rather than waited
on (a close within 3 s of a machine's end used to wait 2 s, then lose the session's usage with the process)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from dispatcher.app import create_app
from dispatcher.sessions import machine_end_grace
from dispatcher.settings import Settings
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines

SESSION = "usage-close-1"


ADDING = ("UsageCount._add", "MachineEndGrace._after_grace", "MachineEndGrace._finalise")


def additions() -> list[asyncio.Task[object]]:
    """The usage count's additions (and machine ends in their grace) still running in this loop."""
    return [t for t in asyncio.all_tasks() if not t.done() and t.get_coro().__qualname__ in ADDING]


async def ended(event: str) -> FastAPI:
    """An in-process dispatcher whose one session has just ended with `event`."""
    app = create_app(Settings(reaper_interval_seconds=0), env={}, machines=ListedMachines([]), rooms=None)
    timeline = app.state.voicefleet.sessions.timeline
    timeline.note(SESSION, "requested", release="stable")
    timeline.note(SESSION, "launched", machine_id="m-1")  # its machine is paid from here
    timeline.note(SESSION, event, at=time.time())
    await timeline.settled()
    return app


async def counted(app: FastAPI) -> float:
    usage = app.state.voicefleet.usage
    today = datetime.now(UTC).date()
    grouped = await usage.rollups.grouped(today, today, "key", None)
    return grouped.get("", {}).get("sessions", 0.0)  # every key's sessions of the day


async def test_a_machine_end_still_in_its_grace_is_added_at_the_close_not_waited_on_nor_lost() -> None:
    app = await ended("machine_ended")
    assert additions(), "the machine's end is waiting out its grace for the bot's own report"
    await app.state.voicefleet.aclose()
    assert additions() == []  # none left to run on against a closed store
    assert await counted(app) == 1  # its grace cut short: the session's machine is in the usage


async def test_an_end_past_its_grace_is_still_added_before_the_close_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    # A grace that ends well within the close's bound: the addition is waited for, as before.
    monkeypatch.setattr(machine_end_grace, "MACHINE_END_GRACE_SECONDS", 0.05)
    for event in ("ended", "machine_ended"):
        app = await ended(event)
        await app.state.voicefleet.aclose()
        assert additions() == []
        assert await counted(app) == 1, event
