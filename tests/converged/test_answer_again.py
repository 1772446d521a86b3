"""An answer Gemini Live's connection cuts mid-sentence (its `goAway`, then the close) is heard again
once Pipecat has resumed the session: the host asks the resumed session for it, and the caller hears
the model after the cut. The fake speaks in real time, as a model does, so the close leaves the rest
of the answer unsent."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from pathlib import Path

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.gemini_live import OUT_RATE, FakeGeminiLive, LiveConnection
from tests.support.gemini_live import KEY, gemini_fleet
from tests.support.http_client import api_client
from tests.support.waiting import until
from voicefleet.loadtest.audio import Segment, loud_segments, read_wav
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ANSWER = 4.0  # seconds of the model's answer, sent in real time
HEARD = 2.0  # loud seconds after the resumption: the answer again, not a tail of the cut one


def test_an_answer_cut_by_a_go_away_is_heard_again_after_the_resumption(tmp_path: Path) -> None:
    fake = FakeGeminiLive(KEY, delay_seconds=0.2, answer_seconds=ANSWER, paced=True)
    with gemini_fleet(tmp_path, fake) as dispatcher:
        asyncio.run(_cut_mid_answer(dispatcher.base_url, fake))
    first, resumed = fake.connections[0], fake.connections[-1]
    assert first.closed_with is not None and resumed.resumed_from is not None, fake.connections
    assert "realtimeInput" in resumed.received and resumed.turns, resumed.received


async def _cut_mid_answer(base_url: str, fake: FakeGeminiLive) -> None:
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).json()
        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
            await client.talk(read_wav(SPEECH_WAV), listen_seconds=0)
            await until(lambda: bool(fake.connections and fake.connections[0].turns), "the answer under way",
                        timeout=15, interval=0.05)
            await asyncio.sleep(0.5)  # a second of its four sent
            assert await asyncio.to_thread(fake.go_away, 0.2) == 1

            def answered_again() -> bool:
                return len(fake.connections) > 1 and bool(fake.connections[-1].turns)

            await until(answered_again, "the answer asked again on the resumed connection", timeout=20)
            resumed_at = time.monotonic()
            await asyncio.sleep(ANSWER + 1.0)  # it plays out
            rec = client.recording
            loud = loud_segments(rec.times, rec.levels)
            # The cut answer's audio the caller had not heard yet plays on after the resumption, and on a
            # busy machine runs straight into the new answer as one loud stretch: what follows the
            # resumption counts less that tail, at most what the first connection sent and was not heard.
            tail = max(0.0, sent_seconds(fake.connections[0]) - loud_between(loud, -math.inf, resumed_at))
            heard = loud_between(loud, resumed_at, math.inf) - tail
            assert heard >= HEARD, (heard, tail, resumed_at, loud)
        await api.delete(f"/sessions/{answer['session_id']}")


def loud_between(loud: list[Segment], since: float, until: float) -> float:
    return sum(max(0.0, min(s.end, until) - max(s.start, since)) for s in loud)


def sent_seconds(connection: LiveConnection) -> float:
    """Seconds of answer audio the fake sent on the connection."""
    parts = [part for message in connection.sent
             for part in message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])]
    return sum(len(base64.b64decode(part["inlineData"]["data"])) for part in parts) / (2 * OUT_RATE)
