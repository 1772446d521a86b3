"""The OpenAI Realtime fake is no more lenient than the real server (a wrong key is refused at the
handshake, an unknown session field gets the real `unknown_parameter` error, a commit of nothing is
refused), and the pinned Pipecat's OpenAIRealtimeLLMService, pointed at it by `base_url` alone,
hears its scripted audio back after a real Pipecat pipeline streams it speech."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator

import numpy as np
import pytest
import websockets
from pipecat.frames.frames import EndFrame, ErrorFrame, Frame, InputAudioRawFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

from tests.fakes.openai_realtime import RATE, FakeOpenAIRealtime
from tests.fakes.server import FakeServer

pytestmark = pytest.mark.timeout(60)

KEY = "sk-realtime-key"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIRealtime]:
    fake = FakeOpenAIRealtime(KEY, delay_seconds=0.2, answer_seconds=0.5)
    with FakeServer(fake.app()) as server:
        fake.url = server.url.replace("http://", "ws://")
        yield fake


def pcm(seconds: float, amplitude: int, rate: int = RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


async def connect(fake: FakeOpenAIRealtime, key: str = KEY) -> websockets.ClientConnection:
    return await websockets.connect(
        f"{fake.url}/v1/realtime?model=gpt-realtime", additional_headers={"Authorization": f"Bearer {key}"}
    )


async def next_of(ws: websockets.ClientConnection, kind: str) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if event["type"] == kind:
            return event


async def test_a_wrong_key_is_refused_at_the_handshake(fake: FakeOpenAIRealtime) -> None:
    with pytest.raises(websockets.InvalidStatus):
        await connect(fake, "sk-wrong")
    assert fake.rejected == ["authorization is not 'Bearer <key>'"]


async def test_an_unknown_session_field_gets_the_real_error_and_the_session_stays(fake: FakeOpenAIRealtime) -> None:
    async with await connect(fake) as ws:
        await next_of(ws, "session.created")
        update = {"type": "realtime", "temperature": 0.7}  # a beta field the GA protocol dropped
        await ws.send(json.dumps({"type": "session.update", "event_id": "ev1", "session": update}))
        error = (await next_of(ws, "error"))["error"]
        assert error == {
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "message": "Unknown parameter: 'session.temperature'.",
            "param": "session.temperature",
            "event_id": "ev1",
        }
        await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "hi"}}))
        assert (await next_of(ws, "error"))["error"]["code"] == "missing_required_parameter"
        nested = {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
        await ws.send(json.dumps({"type": "session.update", "session": nested}))
        assert (await next_of(ws, "error"))["error"]["param"] == "session.audio.input.format.rate"
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "hi"}}))
        assert (await next_of(ws, "session.updated"))["session"]["instructions"] == "hi"


async def test_a_commit_of_nothing_is_refused_and_a_manual_turn_is_answered_after_the_delay(
    fake: FakeOpenAIRealtime,
) -> None:
    async with await connect(fake) as ws:
        await next_of(ws, "session.created")
        manual = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        await ws.send(json.dumps({"type": "session.update", "session": manual}))
        await next_of(ws, "session.updated")
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        assert (await next_of(ws, "error"))["error"]["code"] == "input_audio_buffer_commit_empty"
        audio = base64.b64encode(pcm(0.5, 6000)).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await next_of(ws, "input_audio_buffer.committed")
        await ws.send(json.dumps({"type": "response.create"}))
        created = asyncio.get_running_loop().time()
        await next_of(ws, "response.output_audio.delta")
        assert asyncio.get_running_loop().time() - created >= fake.delay_seconds
        assert (await next_of(ws, "response.done"))["response"]["status"] == "completed"


async def test_the_vendor_ends_a_session_with_its_error_and_close_code(fake: FakeOpenAIRealtime) -> None:
    async with await connect(fake) as ws:
        await next_of(ws, "session.created")
        assert await asyncio.to_thread(fake.end_sessions, 1011, "Deadline expired") == 1
        error = (await next_of(ws, "error"))["error"]
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert error["code"] == "session_expired"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert closed.value.rcvd.reason == "Deadline expired"


class Collect(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.audio = bytearray()
        self.errors: list[str] = []
        self.heard = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.audio.extend(frame.audio)
            if len(self.audio) >= int(0.5 * RATE) * 2:  # one whole answer
                self.heard.set()
        if isinstance(frame, ErrorFrame):
            self.errors.append(frame.error)
        await self.push_frame(frame, direction)


async def test_pipecats_realtime_service_gets_the_scripted_audio_back(fake: FakeOpenAIRealtime) -> None:
    llm = OpenAIRealtimeLLMService(api_key=KEY, base_url=f"{fake.url}/v1/realtime")
    sink = Collect()
    task = PipelineTask(Pipeline([llm, sink]), params=PipelineParams(audio_in_sample_rate=16000))
    runner = asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))
    for _ in range(50):  # wait for the session to be configured before speaking
        if fake.connections and "session.update" in fake.connections[0].received:
            break
        await asyncio.sleep(0.05)
    # Two spoken turns, each followed by the server VAD's quiet and room for the answer.
    speech = (pcm(0.8, 6000, 16000) + pcm(1.5, 0, 16000)) * 2
    for i in range(0, len(speech), 640):
        await task.queue_frame(InputAudioRawFrame(audio=speech[i : i + 640], sample_rate=16000, num_channels=1))
        await asyncio.sleep(0.005)
    await asyncio.wait_for(sink.heard.wait(), 10)
    for _ in range(100):
        if len([e for e in fake.connections[0].sent if e["type"] == "response.done"]) == 2:
            break
        await asyncio.sleep(0.05)
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(runner, 10)

    conn = fake.connections[0]
    assert conn.model == "gpt-realtime-2.1"  # Pipecat's default, sent as ?model=
    assert "session.update" in conn.received and not [e for e in conn.sent if e["type"] == "error"]
    assert [e["type"] for e in conn.sent if e["type"].startswith("input_audio_buffer.speech")] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
    ] * 2
    done = [e["response"]["status"] for e in conn.sent if e["type"] == "response.done"]
    assert done == ["completed", "completed"]  # the second turn is answered too, not cancelled
    answer = np.frombuffer(bytes(sink.audio), dtype="<i2").astype(np.float64)
    assert float(np.sqrt(np.mean(answer**2))) > 3000  # the fake's tone, not silence
    assert sink.errors == []


async def test_a_session_at_its_cap_gets_session_expired_and_the_close() -> None:
    fake = FakeOpenAIRealtime(KEY, cap_seconds=0.3)
    with FakeServer(fake.app()) as server:
        fake.url = server.url.replace("http://", "ws://")
        async with await connect(fake) as ws:
            await next_of(ws, "session.created")
            error = (await next_of(ws, "error"))["error"]
            with pytest.raises(websockets.ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), 5)
    assert error["code"] == "session_expired" and "60 minutes" in error["message"]
    assert fake.connections[0].closed_with == (1000, "")
