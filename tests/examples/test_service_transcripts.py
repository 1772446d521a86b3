"""The assistant example (Deepgram STT → OpenAI LLM → Cartesia TTS) end to end: a real bot process,
a real WebRTC peer, and local fakes of the three APIs reached through the bot's endpoint
overrides. A Pipecat client gets the user's and the bot's transcripts as RTVI events on the data
channel, and the bot's synthesized voice as audio."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pipecat.processors.frameworks.rtvi.models import PROTOCOL_VERSION

from tests.bot.conftest import SPEECH_WAV, SpawnBot, bot_env
from tests.fakes.cartesia import FakeCartesia
from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.server import FakeServer, serve
from tests.support.audio import BOT_AUDIO_RMS, rms
from tests.support.examples import ASSISTANT
from tests.support.webrtc_client import WebRTCClient

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

KEYS = {"DEEPGRAM_API_KEY": "dg-test-key", "OPENAI_API_KEY": "sk-test-key", "CARTESIA_API_KEY": "ct-test-key"}
TRANSCRIPT = "what is the weather like in paris"


class Fakes:
    def __init__(self, deepgram: FakeDeepgram, openai: FakeOpenAIChat, cartesia: FakeCartesia) -> None:
        self.deepgram, self.openai, self.cartesia = deepgram, openai, cartesia

    def env(self) -> dict[str, str]:
        return bot_env(
            BOT_FILE=str(ASSISTANT / "bot.py"),
            **KEYS,
            DEEPGRAM_API_URL=self.deepgram.url,
            OPENAI_BASE_URL=self.openai.url,
            CARTESIA_API_URL=self.cartesia.url,
        )


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    deepgram = FakeDeepgram(KEYS["DEEPGRAM_API_KEY"], transcript=TRANSCRIPT)
    cartesia = FakeCartesia(KEYS["CARTESIA_API_KEY"])
    with (
        FakeServer(deepgram.app()) as stt,
        FakeServer(cartesia.app()) as tts,
        serve(FakeOpenAIChat(KEYS["OPENAI_API_KEY"]), "/v1") as openai,
    ):
        deepgram.url, cartesia.url = stt.url, tts.url
        yield Fakes(deepgram, openai, cartesia)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def test_a_pipecat_client_gets_user_and_bot_transcripts_and_the_bots_voice(
    spawn_bot: SpawnBot, fakes: Fakes
) -> None:
    bot = spawn_bot("--connect-timeout", "30", env=fakes.env())
    async with WebRTCClient(bot.offer_url) as client:
        await client.send_rtvi("client-ready", {"version": PROTOCOL_VERSION, "about": {"library": "aiortc-test"}})
        await client.rtvi_message("bot-ready", timeout=20)
        result = await client.talk(SPEECH_WAV, listen_seconds=30, until_reply=True)
        heard = await client.rtvi_message("user-transcription", lambda d: bool(d.get("final")), timeout=20)
        # RTVI 2.x's successor of user-transcription, which Pipecat 1.14 sends beside it.
        user_input = await client.rtvi_message(
            "user-input", lambda d: d.get("input_type") == "transcription", timeout=5
        )
        said = await client.rtvi_message("bot-output", lambda d: "paris" in d.get("text", "").lower(), timeout=20)

    assert heard["text"] == TRANSCRIPT
    assert user_input["text"] == TRANSCRIPT
    # The reply reached the user as text: the LLM's answer, which echoes what the STT heard.
    assert fakes.openai.replies and TRANSCRIPT in fakes.openai.replies[0]
    assert "paris" in said["text"].lower()
    # ... and as the TTS's voice: non-silent audio after the user's speech, the fake's 440 Hz tone.
    assert result.replied, result.summary()
    assert rms(result.reply_audio) > BOT_AUDIO_RMS / 4, result.summary()
    rate = result.reply_sample_rate
    onset = int(np.argmax(np.abs(result.reply_audio) > 1000))
    assert abs(dominant_hz(result.reply_audio[onset : onset + rate // 2], rate) - 440) < 20
    # The fakes saw what the real services would: real audio in, the transcript in the prompt.
    assert not fakes.deepgram.rejected and not fakes.cartesia.rejected
    assert fakes.deepgram.connections[0].voiced_seconds > 0.5
    assert any("paris" in text.lower() for text in fakes.cartesia.spoken())
    assert bot.wait(15) == 0
