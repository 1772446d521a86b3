"""The Moshi example's service (examples/moshi/moshi_service.py) in a real Pipecat pipeline of its own:
the caller's audio fed in paced as a transport would, what the service pushes collected both ways."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import EndFrame, ErrorFrame, Frame, InputAudioRawFrame, TTSAudioRawFrame, TTSTextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import QueuedFrameProcessor
from pipecat.workers.runner import WorkerRunner

from tests.support.examples import EXAMPLES, use_example

MOSHI = EXAMPLES / "moshi"
use_example(MOSHI)
moshi_service = importlib.import_module("moshi_service")  # by its bare name, as the example's bot.py imports it
IN_RATE = 16000  # a WebRTC caller's rate: the service resamples it to Moshi's 24 kHz
CHUNK_SECONDS = 0.02


@dataclass
class Collected:
    down: list[Frame] = field(default_factory=list)
    up: list[Frame] = field(default_factory=list)

    @property
    def errors(self) -> list[ErrorFrame]:
        return [f for f in self.up if isinstance(f, ErrorFrame)]

    @property
    def audio(self) -> np.ndarray:
        frames = [f for f in self.down if isinstance(f, TTSAudioRawFrame)]
        assert all((f.sample_rate, f.num_channels) == (24000, 1) for f in frames), frames[:3]
        return np.frombuffer(b"".join(f.audio for f in frames), dtype=np.int16)

    @property
    def spoken(self) -> str:
        return "".join(f.text for f in self.down if isinstance(f, TTSTextFrame))


def tone(seconds: float, hz: float = 300.0) -> bytes:
    t = np.arange(int(IN_RATE * seconds)) / IN_RATE
    return (np.sin(2 * np.pi * hz * t) * 6000).astype(np.int16).tobytes()


async def stream_through(service: FrameProcessor, done: Callable[[Collected], bool], seconds: float = 30.0,
                         meanwhile: Callable[[Collected], None] | None = None) -> Collected:
    """Feeds the caller's tone in 20 ms frames until `done` (or `seconds`), then ends the pipeline;
    `meanwhile` runs between frames (off the loop), e.g. to kill the server mid-call."""
    up: asyncio.Queue[Frame] = asyncio.Queue()
    down: asyncio.Queue[Frame] = asyncio.Queue()
    pipeline = Pipeline([QueuedFrameProcessor(queue=up, queue_direction=FrameDirection.UPSTREAM),
                         service, QueuedFrameProcessor(queue=down, queue_direction=FrameDirection.DOWNSTREAM)])
    worker = PipelineWorker(pipeline, cancel_on_idle_timeout=False, params=PipelineParams(audio_in_sample_rate=IN_RATE))
    collected = Collected()

    async def feed() -> None:
        chunk, deadline = tone(CHUNK_SECONDS), time.monotonic() + seconds
        while time.monotonic() < deadline:
            while not up.empty():
                collected.up.append(up.get_nowait())
            while not down.empty():
                collected.down.append(down.get_nowait())
            if done(collected):
                break
            if meanwhile is not None:
                await asyncio.to_thread(meanwhile, collected)
            await worker.queue_frame(InputAudioRawFrame(audio=chunk, sample_rate=IN_RATE, num_channels=1))
            await asyncio.sleep(CHUNK_SECONDS)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner()
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), feed())
    for queue, into in ((up, collected.up), (down, collected.down)):
        while not queue.empty():
            into.append(queue.get_nowait())
    return collected
