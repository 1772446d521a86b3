"""The local page (Pipecat's official client) in headless Chromium: a fake microphone talks to a
real bot through GET /."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SPEECH
from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


SCREENSHOT = Path(__file__).parents[2] / "bench" / "out" / "browser_page.png"  # for a human to look at


async def test_the_page_connects_to_a_bot_and_plays_its_audio(dispatcher, tmp_path):
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    async with Browser(dispatcher.base_url + "/", mic, tmp_path / "profile") as page:
        assert await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 15)
        # What the bot will do is on the page, and its icon is inline (no favicon request).
        behaviour = await page.evaluate("document.getElementById('bot-behaviour').innerText")
        assert "repeats what you say" in behaviour
        assert await page.evaluate("document.querySelector('link[rel=icon]').href.startsWith('data:image/svg+xml')")
        await page.evaluate("document.getElementById('connect').click()")
        connected = await page.wait_for("window.voicefleet.status === 'connected'", 30)
        heard = await page.wait_for("window.voicefleet.botAudioStartedAt !== null", 20)
        spoke = await page.wait_for("window.voicefleet.maxMicLevel > 0.01", 10)  # the fake mic's speech
        # RTVI through Pipecat's client: the bot said it is ready and reported the user's turn.
        turn = await page.wait_for("window.voicefleet.events.includes('user-stopped-speaking')", 30)
        state = await page.evaluate("JSON.stringify(window.voicefleet)")
        await page.screenshot(SCREENSHOT)
        assert connected and heard and spoke and turn, state
        assert {"bot-ready", "user-started-speaking"} <= set(json.loads(state)["events"]), state
        assert await page.evaluate("window.voicefleet.maxBotLevel") > 0.05, state
        session_id = await page.evaluate("window.voicefleet.sessionId")

        await page.evaluate("document.getElementById('hangup').click()")
        assert await page.wait_for("window.voicefleet.status === 'ended'", 10)

    off_host = [url for url in page.requests if not url.startswith((dispatcher.base_url, "data:", "blob:"))]
    assert off_host == [], "the page must not reach any other host"
    assert not [url for url in page.requests if url.endswith("/favicon.ico")]
    final = httpx.get(f"{dispatcher.base_url}/sessions/{session_id}").json()
    assert final["status"] == "ended"


SLOW_BOT = Path(__file__).parents[1] / "bots" / "slow_import.py"


@pytest.fixture(scope="module")
def slow_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    """Cold starts that take seconds (2 s of imports in the bot, and Pipecat's), so the page has a wait to
    show, and longer than the 1 s the dispatcher is told a cold start takes, so it runs past its estimate."""
    env = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(SLOW_BOT), "RESERVE_COLD_START_SECONDS": "1"}
    with run_dispatcher(tmp_path_factory.mktemp("slow-dispatcher"), env) as running:
        yield running


async def test_the_page_says_how_long_a_cold_bot_takes_then_connects(slow_dispatcher, tmp_path):
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    async with Browser(slow_dispatcher.base_url + "/", mic, tmp_path / "profile") as page:
        assert await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 15)
        await page.evaluate("document.getElementById('connect').click()")
        # Past the estimate the page says so, with the time waited, not "about 1 s" until the bot is up.
        overdue = await page.wait_for("/^connecting, longer than the \\d+ s estimated \\(\\d+ s so far\\)$/"
                                      ".test(document.getElementById('status').textContent)", 30)
        text = await page.evaluate("document.getElementById('status').textContent")
        connected = await page.wait_for("window.voicefleet.status === 'connected'", 60)
        state = json.loads(await page.evaluate("JSON.stringify(window.voicefleet)"))
        assert overdue and connected, (text, state)
        assert state["readyInShown"] and all(n >= 1 for n in state["readyInShown"]), state
        assert await page.evaluate("document.getElementById('status').textContent") == "connected"  # no wait left
        await page.evaluate("document.getElementById('hangup').click()")
        assert await page.wait_for("window.voicefleet.status === 'ended'", 10)


BROKEN_BOTS = Path(__file__).parents[1] / "bots"


@pytest.mark.parametrize(("bot", "expected"), [
    ("broken_raises.py", "bot() raised BotConfigurationError: the test bot fails on purpose"),
    ("syntax", "importing it failed: SyntaxError: "),
])
async def test_a_broken_bot_shows_its_own_error_on_the_page_and_the_page_names_the_bot(tmp_path, bot, expected):
    """The cause (file, line, exception) was only in the terminal: the page read 'ended', or 'connecting'
    and then 'WebRTC offer rejected with status 409'."""
    if bot == "syntax":  # not kept in the tree: every linter would trip on it
        bot_file = tmp_path / "my-bot" / "bot.py"
        bot_file.parent.mkdir()
        bot_file.write_text("async def bot(runner_args:\n    pass\n")
    else:
        bot_file = BROKEN_BOTS / bot
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    env = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(bot_file)}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with Browser(dispatcher.base_url + "/", mic, tmp_path / "profile") as page:
            assert await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 15)
            behaviour = await page.evaluate("document.getElementById('bot-behaviour').innerText")
            assert f"{bot_file.parent.name}/{bot_file.name}" in behaviour and "parrot" not in behaviour, behaviour
            await page.evaluate("document.getElementById('connect').click()")
            shown = await page.wait_for("!!window.voicefleet.problem", 60)
            state = json.loads(await page.evaluate("JSON.stringify(window.voicefleet)"))
            problem = await page.evaluate("document.getElementById('problem').innerText")
            visible = await page.evaluate("!document.getElementById('problem').hidden")
            assert shown and visible, (state, dispatcher.log())
    assert problem.startswith("The bot failed: ") and expected in problem and str(bot_file) in problem, problem


async def test_an_error_the_bot_reports_in_a_joined_session_shows_on_the_page(tmp_path):
    """A bot whose service cannot reach its provider goes on, silent: the page said 'connected' with no
    problem while the session's record held the error."""
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    env = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(BROKEN_BOTS / "unusable_service.py")}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with Browser(dispatcher.base_url + "/", mic, tmp_path / "profile") as page:
            assert await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 15)
            await page.evaluate("document.getElementById('connect').click()")
            shown = await page.wait_for("(window.voicefleet.problem || '').includes('UnreachableSTT')", 60)
            state = json.loads(await page.evaluate("JSON.stringify(window.voicefleet)"))
            problem = await page.evaluate("document.getElementById('problem').innerText")
            visible = await page.evaluate("!document.getElementById('problem').hidden")
            assert shown and visible, (state, dispatcher.log()[-3000:])
            assert state["status"] in ("connecting", "connected"), state  # the session goes on
            await page.evaluate("document.getElementById('hangup').click()")
            assert await page.wait_for("window.voicefleet.status === 'ended'", 10)
    assert problem.startswith("The bot reported an error: ") and "cannot reach the speech service" in problem, problem
