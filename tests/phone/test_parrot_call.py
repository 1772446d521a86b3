"""The default bot takes phone calls: the parrot (examples/parrot/bot.py) run by voicefleet's own
host (`python -m bot`) answers a Twilio media stream with its greeting, then parrots the caller."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.support.audio import rms
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, a real bot process importing Pipecat and Silero


@pytest.fixture(scope="module")
def parrot_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py")}
    with run_dispatcher(tmp_path_factory.mktemp("parrot-phone"), env) as running:
        yield running


def loudness(pcm16: bytes) -> float:
    return rms(np.frombuffer(pcm16, dtype=np.int16))


async def test_the_parrot_greets_a_caller_and_says_their_words_back(parrot_dispatcher: DispatcherProcess) -> None:
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        answer = await api.post("/start", json={"transport": "twilio"})
        assert answer.status_code == 201, answer.text
        call = CarrierCall("twilio", f"{answer.json()['wsUrl']}/{answer.json()['token']}")
        await call.open()
        await call.handshake()

        assert loudness(await call.bot_audio(0.1, timeout=30)) > 500  # the greeting tone, through Twilio's serializer
        speech = speech_8k()
        await call.say(speech)
        # The reply: a beep, then the caller's own words (at least most of them).
        reply = await call.bot_audio(len(speech) / 16000 * 0.8, timeout=30)
        assert loudness(reply) > 500

        await call.hang_up()
        assert await wait_active_sessions(api, 0) == 0  # the caller hung up: its machine ended
