"""Review: a closing replica that cut a machine's end's grace short used to add the session from what it held
then, and the rollups add a session once: the bot's own report, still on its way (the grace exists for it), came
at another replica and was refused, so the services it reported at its end were never in the usage. The close
now hands the pending end to the store (here a memory standing in for it, shared by both replicas as the
rollups are) and adds nothing itself."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dispatcher.app import create_app
from dispatcher.sessions.machine_end_grace import MACHINE_END_GRACE_SECONDS
from dispatcher.settings import Settings
from dispatcher.store.handed_over_ends import MemoryHandedOverEnds
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.dispatcher.usage.test_usage_close import SESSION, ended

MINI = {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini", "prompt_tokens": 2700}


async def test_a_bot_report_arriving_after_a_close_cut_its_grace_is_still_counted() -> None:
    handed_over = MemoryHandedOverEnds(shared=True)  # the replicas' one store of handed-over ends
    closing = await ended("machine_ended")  # replica A: the machine's end, its bot's report not in yet
    closing.state.voicefleet.machine_end_grace.handed_over = handed_over
    await closing.state.voicefleet.aclose()  # A stops within the grace
    other = create_app(Settings(reaper_interval_seconds=0), env={}, machines=ListedMachines([]), rooms=None)
    rollups = closing.state.voicefleet.usage.rollups
    other.state.voicefleet.usage.rollups = rollups  # the replicas' one store of usage
    grace = other.state.voicefleet.machine_end_grace
    grace.handed_over = handed_over
    timeline = other.state.voicefleet.sessions.timeline
    timeline.note(SESSION, "requested", release="stable")
    timeline.note(SESSION, "launched", machine_id="m-1")
    timeline.note(SESSION, "machine_ended", at=time.time(), state="ended")  # the shared timeline, as B reads it
    timeline.note(SESSION, "ended", at=time.time(), usage=[MINI])  # the bot's report reaches replica B
    await timeline.settled()
    await other.state.voicefleet.usage.settled()
    grace.clock = lambda: time.time() + MACHINE_END_GRACE_SECONDS + 1  # B's sweep, once the grace is over
    assert await grace.sweep() == 1  # the handed-over end, finalised: it adds nothing past the bot's report
    today = datetime.now(UTC).date()
    models = await rollups.grouped(today, today, "model", None)
    await other.state.voicefleet.aclose()
    assert "llm:gpt-4o-mini" in models, models  # the services its bot reported at its end are in the usage
    assert models[""]["sessions"] == 1, models


async def test_a_handed_over_end_never_reported_is_counted_once_by_another_replica_after_its_grace() -> None:
    handed_over = MemoryHandedOverEnds(shared=True)
    closing = await ended("machine_ended")  # its bot was killed: no report will come
    closing.state.voicefleet.machine_end_grace.handed_over = handed_over
    await closing.state.voicefleet.aclose()
    rollups = closing.state.voicefleet.usage.rollups
    today = datetime.now(UTC).date()
    assert (await rollups.grouped(today, today, "key", None)).get("", {}).get("sessions", 0) == 0  # handed over
    others = [create_app(Settings(reaper_interval_seconds=0), env={}, machines=ListedMachines([]), rooms=None)
              for _ in range(2)]
    for other in others:
        other.state.voicefleet.usage.rollups = rollups
        other.state.voicefleet.machine_end_grace.handed_over = handed_over
        timeline = other.state.voicefleet.sessions.timeline
        timeline.note(SESSION, "requested", release="stable")
        timeline.note(SESSION, "launched", machine_id="m-1")
        timeline.note(SESSION, "machine_ended", at=time.time(), state="ended")  # the shared timeline
        await timeline.settled()
    first, second = (other.state.voicefleet.machine_end_grace for other in others)
    assert await first.sweep() == 0  # still in its grace: its bot's report may yet come
    first.clock = second.clock = lambda: time.time() + MACHINE_END_GRACE_SECONDS + 1
    assert await first.sweep() == 1
    assert await second.sweep() == 0  # finalised once, whichever replica looks
    grouped = await rollups.grouped(today, today, "key", None)
    for other in others:
        await other.state.voicefleet.aclose()
    assert grouped[""]["sessions"] == 1, grouped
