"""The Gemini Live fake is no more lenient than the real server (a wrong key, a first message that is
not `setup`, an unknown field and an unknown model each close the socket with the server's code and
words), warns with `goAway` before it closes a connection, and resumes a session only with a handle
it issued; the pinned Pipecat's GeminiLiveLLMService, pointed at it by its base URL and a trusted
CA alone, hears its scripted audio back, resumes after the `goAway`, and hears the next answer."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import websockets
from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame, LLMContextFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.google.gemini_live.llm import GeminiLiveLLMService

from tests.fakes.gemini_live import BAD_KEY, DEADLINE, MODELS, NOT_SETUP, OUT_RATE, FakeGeminiLive
from tests.fakes.gemini_live_setup import SETUP_PATH
from tests.support.gemini_live import KEY, served
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)

SETUP = {"setup": {"model": MODELS[0], "generationConfig": {"responseModalities": ["AUDIO"]}, "sessionResumption": {}}}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGeminiLive]:
    fake = FakeGeminiLive(KEY, delay_seconds=0.2, answer_seconds=0.5)
    with served(fake, tmp_path) as ca:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # read by the SDK's client when Pipecat builds it
        yield fake


def pcm(seconds: float, amplitude: int, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


async def connect(fake: FakeGeminiLive, key: str = KEY) -> websockets.ClientConnection:
    trust = ssl.create_default_context(cafile=fake.ca)
    path = SETUP_PATH.format(version="v1beta")
    url = fake.url.replace("https://", "wss://") + path
    return await websockets.connect(url, additional_headers={"x-goog-api-key": key}, ssl=trust)


async def closed_with(ws: websockets.ClientConnection) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def next_of(ws: websockets.ClientConnection, kind: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if kind in message:
            return message[kind]


@pytest.mark.parametrize(("key", "first", "refusal"), [
    ("AIza-wrong", SETUP, BAD_KEY),
    (KEY, {"realtimeInput": {"audio": {"data": "", "mimeType": "audio/pcm"}}}, NOT_SETUP),
    (KEY, {"setup": {**SETUP["setup"], "temperature": 0.7}},
     (1007, 'Invalid JSON payload received. Unknown name "temperature" at \'setup\': Cannot find field.')),
    (KEY, {"setup": {"model": MODELS[0], "generation_config": {"voice": "Puck"}}},
     (1007, 'Invalid JSON payload received. Unknown name "voice" at \'setup.generation_config\': Cannot find field.')),
    (KEY, {"setup": {"model": "models/gemini-0-live"}},
     (1008, "models/gemini-0-live is not found for API version v1beta, or is not supported for bidiGenerateContent. "
            "Call ListModels to s")),  # cut at the close frame's 123 bytes
    (KEY, {"setup": {**SETUP["setup"], "sessionResumption": {"handle": "never-issued"}}},
     (1007, "Request contains an invalid argument.")),
])  # fmt: skip
async def test_what_the_real_server_refuses_closes_the_socket_with_its_code_and_words(
    fake: FakeGeminiLive, key: str, first: dict, refusal: tuple[int, str]
) -> None:
    async with await connect(fake, key) as ws:
        await ws.send(json.dumps(first))
        assert await closed_with(ws) == refusal
    assert fake.refused == [refusal] and not fake.connections


async def test_a_session_set_up_by_proto_names_is_answered_after_the_delay(fake: FakeGeminiLive) -> None:
    async with await connect(fake) as ws:
        snake = {"setup": {"model": MODELS[0], "generation_config": {"response_modalities": ["AUDIO"]}}}
        await ws.send(json.dumps(snake))
        assert "sessionId" in await next_of(ws, "setupComplete")
        speech = pcm(0.6, 6000) + pcm(0.7, 0)
        for i in range(0, len(speech), 3200):
            chunk = {"data": base64.b64encode(speech[i : i + 3200]).decode(), "mimeType": "audio/pcm;rate=16000"}
            await ws.send(json.dumps({"realtimeInput": {"audio": chunk}}))
        sent = asyncio.get_running_loop().time()
        part = (await next_of(ws, "serverContent"))["modelTurn"]["parts"][0]
        assert asyncio.get_running_loop().time() - sent >= fake.delay_seconds * 0.9
        assert part["inlineData"]["mimeType"] == f"audio/pcm;rate={OUT_RATE}"
        while "turnComplete" not in (content := await next_of(ws, "serverContent")):
            assert "modelTurn" in content or "generationComplete" in content
    assert not fake.refused and len(fake.connections[0].turns) == 1


async def test_go_away_warns_then_closes_and_a_handle_it_issued_resumes_the_session(fake: FakeGeminiLive) -> None:
    async with await connect(fake) as ws:
        await ws.send(json.dumps(SETUP))
        await next_of(ws, "setupComplete")
        handle = (await next_of(ws, "sessionResumptionUpdate"))["newHandle"]
        assert await asyncio.to_thread(fake.go_away, 0.3) == 1
        assert await next_of(ws, "goAway") == {"timeLeft": "0.3s"}
        assert await closed_with(ws) == DEADLINE
    resume = {"setup": {**SETUP["setup"], "sessionResumption": {"handle": handle}}}
    async with await connect(fake) as ws:
        await ws.send(json.dumps(resume))
        await next_of(ws, "setupComplete")
    assert fake.connections[-1].resumed_from == handle
    fake.refuse_resumption = (1011, "The service is currently unavailable.")
    async with await connect(fake) as ws:
        await ws.send(json.dumps(resume))
        assert await closed_with(ws) == (1011, "The service is currently unavailable.")


class Heard(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.audio = bytearray()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.audio.extend(frame.audio)
        await self.push_frame(frame, direction)


async def speak(task: PipelineTask) -> None:
    speech = pcm(0.8, 6000) + pcm(1.0, 0)
    for i in range(0, len(speech), 640):
        await task.queue_frame(InputAudioRawFrame(audio=speech[i : i + 640], sample_rate=16000, num_channels=1))
        await asyncio.sleep(0.005)


@pytest.fixture
async def gemini_pipeline(fake: FakeGeminiLive, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[PipelineTask, Heard]]:  # fmt: skip
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.url)  # the SDK's own base URL variable: no code change
    heard = Heard()
    task = PipelineTask(
        Pipeline([GeminiLiveLLMService(api_key=KEY), heard]), params=PipelineParams(audio_in_sample_rate=16000)
    )
    runner = asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))
    await task.queue_frame(LLMContextFrame(LLMContext()))  # Pipecat streams audio once it has a context
    yield task, heard
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(runner, 10)


async def test_pipecats_gemini_live_service_hears_the_answer_and_resumes_after_go_away(
    fake: FakeGeminiLive, gemini_pipeline: tuple[PipelineTask, Heard]
) -> None:
    task, heard = gemini_pipeline
    await until(lambda: fake.connections, "Pipecat's connection", timeout=10)
    await speak(task)
    one_answer = int(fake.answer_seconds * OUT_RATE) * 2
    await until(lambda: len(heard.audio) >= one_answer, "the first answer", timeout=10)
    first = fake.connections[0]
    assert first.model == MODELS[0] and first.audio_bytes > 0
    handle = next(m for m in reversed(first.sent) if "sessionResumptionUpdate" in m)
    assert await asyncio.to_thread(fake.go_away, 0.2) == 1
    await until(lambda: len(fake.connections) == 2, "Pipecat's resumption", timeout=10)
    assert fake.connections[1].resumed_from == handle["sessionResumptionUpdate"]["newHandle"]
    await speak(task)
    await until(lambda: len(heard.audio) >= 2 * one_answer, "the answer after the resumption", timeout=10)
    assert len(fake.connections[1].turns) == 1  # audio flows after the resumption
    answer = np.frombuffer(bytes(heard.audio), dtype="<i2").astype(np.float64)
    assert float(np.sqrt(np.mean(answer**2))) > 3000  # the fake's tone, not silence
    assert fake.refused == []
