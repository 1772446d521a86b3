"""What the test bots share: their transports, a tone, an echo, and the usual worker and runner.

The test bots (this folder) are Pipecat bot files in the canonical shape, `async def bot(runner_args)`
with `create_transport`, importing nothing from voicefleet: the tests run each under voicefleet's
host and under Pipecat's own development runner (`python greeter.py`). A few are in the shapes of
pipecat-examples' scripts that their own servers start (`run_bot(webrtc_connection)`, `main()`),
which have no runner arguments. This module sits beside them as any bot's own helper module would.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import IDLE_TIMEOUT_SECS, PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

SAMPLE_RATE = 16000
RECORD_TO = "TEST_BOT_RECORD_TO"  # a file a test names, for what reached a script-shaped bot

transport_params: dict[str, Any] = {"webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True)}


def tone(hz: float = 440.0, seconds: float = 0.5) -> TTSAudioRawFrame:
    """A loud sine, as the bot's speech (the output transport reports it as the bot speaking)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (np.sin(2 * np.pi * hz * t) * 0.3 * 32767).astype(np.int16).tobytes()
    return TTSAudioRawFrame(audio=audio, sample_rate=SAMPLE_RATE, num_channels=1)


class Echo(FrameProcessor):
    """Plays back what it hears, as it hears it."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(frame.audio, frame.sample_rate, frame.num_channels)
        await self.push_frame(frame, direction)


def record(seen: dict[str, Any]) -> None:
    """Writes `seen` as JSON to the file `TEST_BOT_RECORD_TO` names, when it names one."""
    if RECORD_TO in os.environ:
        Path(os.environ[RECORD_TO]).write_text(json.dumps(seen))


async def run_pipeline(
    transport: BaseTransport,
    runner_args: RunnerArguments | None,
    middle: list[FrameProcessor],
    *,
    greeting: Frame | None = None,
    greeting_delay: float = 0.0,
) -> None:
    """transport in → `middle` → transport out until the client leaves; `greeting` `greeting_delay`
    seconds after it arrives. A script-shaped bot has no `runner_args`: Pipecat's defaults, signals
    left to whoever runs it."""
    worker = PipelineWorker(
        Pipeline([transport.input(), *middle, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs if runner_args else IDLE_TIMEOUT_SECS,
    )

    @transport.event_handler("on_client_connected")
    async def on_connected(transport: BaseTransport, client: Any) -> None:
        if greeting is not None:
            await asyncio.sleep(greeting_delay)
            await worker.queue_frames([greeting])

    @transport.event_handler("on_client_disconnected")
    async def on_disconnected(transport: BaseTransport, client: Any) -> None:
        await worker.cancel()

    signals = (runner_args.handle_sigint, runner_args.handle_sigterm) if runner_args else (False, False)
    runner = WorkerRunner(handle_sigint=signals[0], handle_sigterm=signals[1])
    await runner.add_workers(worker)
    await runner.run()
