"""A call to voicefleet's own bot host (`python -m bot --transport websocket`) running the user's
bot file, launched for the call through the real dispatcher: speech in, the bot's audio out. A call
that claims a warm reserve bot of the host's default mode instead is tests/phone/test_calls.py's
(its dispatcher keeps one such bot per carrier, and each call's warm hit is counted)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions
from tests.support.audio import rms
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher

pytestmark = pytest.mark.slow


async def test_the_bot_host_serves_a_call_to_the_users_bot_file(tmp_path: Path) -> None:
    env = {**phone_env(tmp_path), "RESERVE_MAX_IDLE": "0"}  # cold: no reserve bot
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
            start = (await api.post("/start", json={"transport": "telnyx", "body": {"plan": "gold"}})).json()
            call = CarrierCall("telnyx", f"{start['wsUrl']}/{start['token']}")
            await call.open()
            await call.handshake()
            greeting = await call.bot_audio(0.1, timeout=60)  # a cold bot: its process starts for the call
            assert rms(np.frombuffer(greeting, dtype=np.int16)) > 500
            speech = speech_8k()
            await call.say(speech)
            echoed = await call.bot_audio(len(speech) / 16000 * 0.8, timeout=30)
            assert rms(np.frombuffer(echoed, dtype=np.int16)) > 500
            await call.hang_up()
            assert await wait_active_sessions(api, 0) == 0  # its machine ended

