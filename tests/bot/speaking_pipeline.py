"""A real Pipecat pipeline whose output transport plays at a chosen speed, with an observer of the
host's (the consent announcement, the vendor's goodbye) in its worker and the caller on the line:
what the caller has heard of a line is counted sample by sample."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, StartFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from bot.recording.announcement import Announcement

RATE = 8000
LINE_SAMPLES = 4880  # 0.61 s: 15 of the transport's 40 ms chunks and a part-chunk after them
WORD = 1000  # the line's every sample: what the caller hears of it is counted by it


def line() -> Announcement:
    return Announcement(struct.pack("<h", WORD) * LINE_SAMPLES, RATE)


class Speaker(BaseOutputTransport):
    """Plays `slowness` times slower than real time (1: real time), counting the line's samples sent."""

    def __init__(self, slowness: float) -> None:
        super().__init__(TransportParams(audio_out_enabled=True, audio_out_sample_rate=RATE,
                                         audio_out_write_timeout_secs=60.0))
        self.slowness = slowness
        self.heard = 0
        self.written_at = 0.0  # epoch seconds: when the caller had heard the last frame written
        self.started = asyncio.Event()

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)  # as a transport does once connected
        self.started.set()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        await asyncio.sleep(self.slowness * len(frame.audio) / 2 / RATE)  # its time, then it is heard
        self.heard += sum(1 for (value,) in struct.iter_unpack("<h", frame.audio) if value == WORD)
        self.written_at = time.time()
        return True


@asynccontextmanager
async def caller_on_the_line(observer: BaseObserver, speaker: Speaker) -> AsyncIterator[None]:
    """Runs `speaker` in a worker `observer` watches, once the caller's first audio reached it."""
    worker = PipelineWorker(Pipeline([speaker]), params=PipelineParams(audio_out_sample_rate=RATE),
                            observers=[observer])
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(speaker.started.wait(), 10)
        caller = FramePushed(source=BaseInputTransport(TransportParams()), destination=FrameProcessor(),
                             frame=InputAudioRawFrame(b"\0\0" * 160, RATE, 1),
                             direction=FrameDirection.DOWNSTREAM, timestamp=0)
        await observer.on_push_frame(caller)  # the caller is on the line
        yield
    finally:
        await worker.cancel()
        await asyncio.wait_for(running, 10)
