"""The converged example bot on Gemini Live takes a phone call: a Twilio media stream (8 kHz μ-law)
into a warm bot under a real dispatcher, the caller's words to the model (the fake) and the model's
answer back down the line; a refused resumption after the vendor's `goAway` is the call's error, told
to the caller in words down the line before the call ends."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fakes.carriers import CarrierCall
from tests.fakes.gemini_live import FakeGeminiLive
from tests.phone.conftest import phone_env, speech_8k
from tests.support.audio import rms
from tests.support.gemini_live import KEY, gemini_env, served
from tests.support.http_client import api_client
from tests.support.realtime_turns import warm_fleet
from tests.support.waiting import until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
REFUSED = (1011, "The service is currently unavailable.")
WORDS = 2.0  # loud seconds down the line after the refusal: the recorded line, not the 0.8 s tone


async def test_a_caller_hears_the_models_answer_and_a_refused_resumption_is_the_calls_error(tmp_path: Path) -> None:
    fake = FakeGeminiLive(KEY, delay_seconds=0.2, answer_seconds=0.8)
    with served(fake, tmp_path) as ca:
        (tmp_path / "calls").mkdir()
        phone, gemini = phone_env(tmp_path / "calls"), gemini_env(fake.url, ca=ca)
        # The bot reads both: the carrier's REST credentials (to hang up) and the vendor's key.
        env = {**phone, **gemini, "LOCAL_BOT_ENV": f"{phone['LOCAL_BOT_ENV']},{gemini['LOCAL_BOT_ENV']}"}
        with warm_fleet(tmp_path, env) as dispatcher:
            async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
                answer = await api.post("/start", json={"transport": "twilio"})
                assert answer.status_code == 201, answer.text
                body = answer.json()
                call = CarrierCall("twilio", f"{body['wsUrl']}/{body['token']}")
                await call.open()
                await call.handshake()
                await until(lambda: fake.connections, "the bot's Gemini session", timeout=30)
                await call.say(speech_8k())
                reply = await call.bot_audio(0.6, timeout=30)
                assert rms(np.frombuffer(reply, dtype=np.int16)) > 500  # the model's tone, through Twilio's μ-law
                assert len(fake.connections[0].turns) >= 1

                fake.refuse_resumption = REFUSED
                refused_at = time.monotonic()
                await until(lambda: fake.go_away(0.2), "an open Gemini connection to warn", timeout=5)

                async def reported() -> dict[str, Any] | None:
                    session = (await api.get(f"/sessions/{body['sessionId']}")).json()
                    return session if session.get("error") else None

                session = await until(reported, "the refused resumption in the call's error", timeout=10)
                assert REFUSED[1] in str(session["error"]), session

                def loud_seconds() -> float:
                    return sum(len(pcm) / 16000 for at, pcm in call.heard
                               if at > refused_at and rms(np.frombuffer(pcm, dtype=np.int16)) > 500)

                with contextlib.suppress(Exception):  # the line closed by the bot's end: all it said is heard
                    while loud_seconds() < WORDS:
                        await call.next_bot_audio(timeout=15)
                assert loud_seconds() >= WORDS, loud_seconds()

                async def ended() -> dict[str, Any] | None:
                    events = (await api.get(f"/sessions/{body['sessionId']}/timeline")).json()["events"]
                    return next((e for e in events if e.get("event") == "ended"), None)

                end: dict[str, Any] | None = await until(ended, "the call's end", timeout=30)
                assert end is not None and end["reason"] == "vendor_ended", end
                with contextlib.suppress(Exception):  # the bot may have closed the line already
                    await call.hang_up()
