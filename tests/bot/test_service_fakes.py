"""The service fakes are no more lenient than the APIs they stand for: wrong credentials are
refused at the handshake, silence gets no transcript, and a completion, streamed or whole, parses in
the real OpenAI SDK. (The end-to-end proof is test_service_transcripts.py; this keeps the fakes honest.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import websockets
from openai import AsyncOpenAI, AuthenticationError, BadRequestError

from tests.fakes.cartesia import FakeCartesia
from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.server import FakeServer, serve

pytestmark = pytest.mark.timeout(30)

RATE = 16000
LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1"


@pytest.fixture
def deepgram() -> Iterator[FakeDeepgram]:
    fake = FakeDeepgram("dg-key", transcript="hello there")
    with FakeServer(fake.app()) as server:
        fake.url = server.url.replace("http://", "ws://")
        yield fake


def pcm(seconds: float, amplitude: int) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


async def test_deepgram_refuses_a_handshake_without_the_token_scheme(deepgram: FakeDeepgram) -> None:
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(deepgram.url + LISTEN, additional_headers={"Authorization": "Bearer dg-key"}):
            pass
    assert deepgram.rejected == ["authorization is not 'Token <key>'"]


async def test_deepgram_answers_silence_with_nothing_and_speech_with_the_transcript(deepgram: FakeDeepgram) -> None:
    headers = {"Authorization": "Token dg-key"}
    async with websockets.connect(deepgram.url + LISTEN, additional_headers=headers) as ws:
        for _ in range(50):  # 2 s of digital silence, 40 ms at a time
            await ws.send(pcm(0.04, 0))
        await ws.send(json.dumps({"type": "Finalize"}))
        empty = json.loads(await ws.recv())
        assert empty["from_finalize"] and empty["channel"]["alternatives"][0]["transcript"] == ""
        for _ in range(20):  # 0.8 s of sound, then the endpoint's quiet
            await ws.send(pcm(0.04, 6000))
        for _ in range(10):
            await ws.send(pcm(0.04, 0))
        result = json.loads(await ws.recv())
    assert result["type"] == "Results" and result["is_final"] and result["speech_final"]
    assert result["channel"]["alternatives"][0]["transcript"] == "hello there"
    assert deepgram.transcripts_sent() == ["hello there"]


async def test_openai_streams_a_completion_the_sdk_parses_and_refuses_a_wrong_key() -> None:
    with serve(FakeOpenAIChat("sk-key"), "/v1") as fake:
        client = AsyncOpenAI(api_key="sk-key", base_url=fake.url)
        stream = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi there"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        assert text == "You asked: hi there."
        whole = await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
        assert whole.choices[0].message.content == "You asked: x."  # not streamed: one completion object
        with pytest.raises(BadRequestError):
            await client.chat.completions.create(model="gpt-test", messages=[])
        with pytest.raises(AuthenticationError):
            await AsyncOpenAI(api_key="wrong", base_url=fake.url, max_retries=0).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "x"}], stream=True
            )


async def test_cartesia_needs_its_version_header_and_speaks_pcm_then_done() -> None:
    fake = FakeCartesia("ct-key", seconds_per_word=0.1)
    with FakeServer(fake.app()) as server:
        url = server.url.replace("http://", "ws://") + "/tts/websocket"
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(url, additional_headers={"X-API-Key": "ct-key"}):
                pass
        headers = {"X-API-Key": "ct-key", "Cartesia-Version": "2025-04-16"}
        request = {
            "context_id": "c1",
            "model_id": "sonic",
            "transcript": "two words",
            "voice": {"mode": "id", "id": "v"},
            "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": RATE},
            "continue": False,
        }
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps(request))
            messages = []
            while not messages or messages[-1]["type"] != "done":
                messages.append(json.loads(await ws.recv()))
    assert fake.rejected == ["no Cartesia-Version header"]
    chunks = [m for m in messages if m["type"] == "chunk"]
    assert chunks and all(m["context_id"] == "c1" for m in messages)
    assert fake.connections[0].audio_seconds == pytest.approx(0.2)
