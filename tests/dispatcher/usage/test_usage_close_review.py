"""Review: a closing replica that cuts a machine's end's grace short adds the session from what it holds then,
and the rollups add a session once: the bot's own report, still on its way (the grace exists for it), comes at
another replica and is refused, so the services it reported at its end are never in the usage."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.dispatcher.usage.test_usage_close import SESSION, ended

MINI = {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini", "prompt_tokens": 2700}


@pytest.mark.xfail(strict=True, reason="the close adds a machine's end at once and the rollups' once-only mark then "
                   "refuses the bot's report that the grace waits for: its services are lost from the usage")
async def test_a_bot_report_arriving_after_a_close_cut_its_grace_is_still_counted() -> None:
    closing = await ended("machine_ended")  # replica A: the machine's end, its bot's report not in yet
    await closing.state.voicefleet.aclose()  # A stops within the grace
    other = create_app(Settings(reaper_interval_seconds=0), env={}, machines=ListedMachines([]), rooms=None)
    rollups = closing.state.voicefleet.usage.rollups
    other.state.voicefleet.usage.rollups = rollups  # the replicas' one store of usage
    timeline = other.state.voicefleet.sessions.timeline
    timeline.note(SESSION, "requested", release="stable")
    timeline.note(SESSION, "launched", machine_id="m-1")
    timeline.note(SESSION, "ended", at=time.time(), usage=[MINI])  # the bot's report reaches replica B
    await timeline.settled()
    await other.state.voicefleet.usage.settled()
    today = datetime.now(UTC).date()
    models = await rollups.grouped(today, today, "model", None)
    await other.state.voicefleet.aclose()
    assert "llm:gpt-4o-mini" in models, models  # the services its bot reported at its end are in the usage
