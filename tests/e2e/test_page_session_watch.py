"""The local page in headless Chromium watches its session to the end: a warm bot that dies before
the peer connection is up shows as failed, with its reason, from the session's own record (not
"connecting" until ICE gives up), and an RTVI error from the bot shows its text."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SPEECH
from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

BOTS = Path(__file__).parents[1] / "bots"
IDLE = 'voicefleet_reserve_bots{provider="local",state="idle"}'


def warm(base_url: str) -> bool:
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(IDLE):
            return float(line.rsplit(" ", 1)[1]) >= 1
    return False


async def test_a_warm_bot_that_dies_before_its_peer_connects_fails_on_the_page_with_its_reason(tmp_path):
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    env = {"RESERVE_MIN_IDLE": "1", "BOT_FILE": str(BOTS / "broken_raises.py")}
    with run_dispatcher(tmp_path, env) as dispatcher:
        wait_until(lambda: warm(dispatcher.base_url), "a warm reserve bot", timeout=120, interval=0.2)
        async with Browser(dispatcher.base_url + "/", mic, tmp_path / "profile") as page:
            assert await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 15)
            await page.evaluate("document.getElementById('connect').click()")
            # The session's end, not the client's: "failed" is what the page makes of the session's
            # record; a transport that gave up on ICE ends the page as "ended".
            failed = await page.wait_for("window.voicefleet.status === 'failed'", 60)
            state = json.loads(await page.evaluate("JSON.stringify(window.voicefleet)"))
            problem = await page.evaluate("document.getElementById('problem').innerText")
            shown = await page.evaluate("document.getElementById('status').textContent")
            assert failed and shown == "failed", (state, dispatcher.log()[-3000:])
    assert problem.startswith("The bot failed: ") and "the test bot fails on purpose" in problem, problem
    assert state["transportState"] != "ready", state  # it never connected: the watch told it


async def test_an_rtvi_error_from_the_bot_shows_its_text(tmp_path):
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    env = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(BOTS / "recoverable_error.py")}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with Browser(dispatcher.base_url + "/", mic, tmp_path / "profile") as page:
            assert await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 15)
            await page.evaluate("document.getElementById('connect').click()")
            told = await page.wait_for("window.voicefleet.errors.length > 0", 60)
            state = json.loads(await page.evaluate("JSON.stringify(window.voicefleet)"))
            log = await page.evaluate("document.getElementById('log').innerText")
            assert told, (state, dispatcher.log()[-3000:])
            assert state["status"] == "connected", state  # a non-fatal error: the session goes on
            await page.evaluate("document.getElementById('hangup').click()")
            assert await page.wait_for("window.voicefleet.status === 'ended'", 10)
    assert state["errors"] == ["speech service request timed out; retrying"], state
    assert "error: speech service request timed out; retrying" in log and "[object Object]" not in log, log
