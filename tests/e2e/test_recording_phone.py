"""Every call kept, for a phone call too: a real dispatcher records the parrot answering a Twilio
media stream (a carrier caller speaking a known WAV at 8 kHz) into its local folder store. The
recording is at the call's own rate, as long as the call, with the caller's words on the left and
the parrot's on the right."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.recording_checks import artifacts_when_kept, loud_seconds, read_stereo, timeline_event, twilio_call
from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, a real bot process importing Pipecat and Silero


@pytest.fixture(scope="module")
def recording_phone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "RECORDING": "on", "RECORDING_DESTINATION": str(folder)}
    with run_dispatcher(tmp_path_factory.mktemp("parrot-phone"), env) as running:
        yield running, folder


async def test_a_phone_call_is_kept_at_its_own_rate_caller_left_and_bot_right(
        recording_phone: tuple[DispatcherProcess, Path]) -> None:
    dispatcher, _ = recording_phone
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        session_id, call = await twilio_call(api)
        await call.bot_audio(0.1, timeout=30)  # the greeting
        speech = speech_8k()
        await call.say(speech)
        await call.bot_audio(len(speech) / 16000 * 0.8, timeout=30)  # the parrot's reply
        await asyncio.sleep(2.0)  # a quiet end: the recording runs to the call's end
        await call.hang_up()
        assert await wait_active_sessions(api, 0) == 0

        listing = await artifacts_when_kept(api, session_id, {"recording.wav", "report.json"})
        joined = await timeline_event(api, session_id, "joined")
        ended = await timeline_event(api, session_id, "ended")
        urls = {a["name"]: a["url"] for a in listing["artifacts"]}
        async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=30) as download:
            stereo = read_stereo((await download.get(urls["recording.wav"])).content)
            report = (await download.get(urls["report.json"])).json()

    assert stereo.sample_rate == 8000  # the call's own rate, not resampled
    call_seconds = ended["at"] - joined["at"]
    assert call_seconds >= 5.0
    assert abs(stereo.seconds - call_seconds) <= 1.0, (stereo.seconds, call_seconds)
    caller, bot = loud_seconds(stereo.left, 8000), loud_seconds(stereo.right, 8000)
    assert bot and caller and bot[0][0] < caller[0][0], (caller, bot)  # the greeting, the bot's, comes first
    assert sum(end - start for start, end in caller) >= 1.0, caller  # the caller's words, on the left
    echo = [(start, end) for start, end in bot if start >= caller[0][0]]
    assert sum(end - start for start, end in echo) >= 1.0, (caller, bot)  # the parrot's, on the right, after
    assert report["recording"]["status"] == "complete" and report["transport"] == "websocket"
