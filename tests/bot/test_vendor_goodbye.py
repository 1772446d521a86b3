"""The vendor's goodbye (bot/vendor_goodbye.py) said through a real Pipecat pipeline: `say` returns only
once the output transport has played the whole line, however slowly it plays (a busy host), and a
transport stuck on a write still lets the session end, after the line's length and a bounded wait."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, StartFrame
from pipecat.observers.base_observer import FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from bot import vendor_goodbye
from bot.recording.announcement import Announcement
from bot.vendor_goodbye import Goodbye

RATE = 8000
LINE_SAMPLES = 4880  # 0.61 s: 15 of the transport's 40 ms chunks and a part-chunk after them
WORD = 1000  # the line's every sample: what the caller hears of it is counted by it


class Speaker(BaseOutputTransport):
    """Plays `slowness` times slower than real time (1: real time), counting the line's samples sent."""

    def __init__(self, slowness: float) -> None:
        super().__init__(TransportParams(audio_out_enabled=True, audio_out_sample_rate=RATE,
                                         audio_out_write_timeout_secs=60.0))
        self.slowness = slowness
        self.heard = 0
        self.started = asyncio.Event()

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)  # as a transport does once connected
        self.started.set()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        await asyncio.sleep(self.slowness * len(frame.audio) / 2 / RATE)  # its time, then it is heard
        self.heard += sum(1 for (value,) in struct.iter_unpack("<h", frame.audio) if value == WORD)
        return True


@dataclass
class Call:
    goodbye: Goodbye
    speaker: Speaker


@pytest.fixture
async def call(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Call]:
    line = Announcement(struct.pack("<h", WORD) * LINE_SAMPLES, RATE)
    monkeypatch.setattr(vendor_goodbye, "_lines", {vendor_goodbye.UNREACHABLE: line})
    goodbye, speaker = Goodbye(), Speaker(request.param)
    worker = PipelineWorker(Pipeline([speaker]), params=PipelineParams(audio_out_sample_rate=RATE),
                            observers=[goodbye])
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(speaker.started.wait(), 10)
        caller = FramePushed(source=BaseInputTransport(TransportParams()), destination=FrameProcessor(),
                             frame=InputAudioRawFrame(b"\0\0" * 160, RATE, 1),
                             direction=FrameDirection.DOWNSTREAM, timestamp=0)
        await goodbye.on_push_frame(caller)  # the caller is on the line
        yield Call(goodbye, speaker)
    finally:
        await worker.cancel()
        await asyncio.wait_for(running, 10)


@pytest.mark.parametrize("call", [1.0, 2.5], indirect=True, ids=["real_time", "slower_than_real_time"])
async def test_the_line_has_been_played_whole_when_say_returns(call: Call) -> None:
    assert await call.goodbye.say(unreachable=True) == LINE_SAMPLES / RATE
    assert call.speaker.heard == LINE_SAMPLES  # its last part-chunk too


@pytest.mark.parametrize("call", [1000.0], indirect=True, ids=["stuck"])
async def test_a_transport_that_never_plays_the_line_out_still_lets_the_session_end(
        call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_goodbye, "PLAYOUT_LIMIT_SECONDS", 0.5)
    began = time.monotonic()
    assert await asyncio.wait_for(call.goodbye.say(unreachable=True), 30) == LINE_SAMPLES / RATE
    assert time.monotonic() - began >= LINE_SAMPLES / RATE + 0.5  # it waited for the transport first
    assert call.speaker.heard == 0
