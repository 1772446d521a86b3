"""A user's phone bot in Pipecat's shape that writes down the keys its caller presses (Pipecat's
InputDTMFFrame), one line a key, to `PHONE_TEST_REPORTS/{session}.keys`, and greets the caller with a
tone so the call is answered at once. It imports nothing from voicefleet."""

import math
import os
import struct
from pathlib import Path
from typing import Any

from pipecat.frames.frames import Frame, InputDTMFFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import create_transport
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.workers.runner import WorkerRunner

RATE = 8000


class Keys(FrameProcessor):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame):
            with self._path.open("a") as keys:
                keys.write(f"{frame.button.value}\n")
        await self.push_frame(frame, direction)


def params() -> FastAPIWebsocketParams:
    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True)


async def bot(runner_args: Any) -> None:
    transport = await create_transport(runner_args, {"exotel": params})
    keys = Path(os.environ["PHONE_TEST_REPORTS"], f"{runner_args.session_id}.keys")
    task = PipelineWorker(Pipeline([transport.input(), Keys(keys), transport.output()]),
                          params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE))

    @transport.event_handler("on_client_connected")  # type: ignore[untyped-decorator]  # Pipecat's has no types
    async def on_connected(transport: Any, client: Any) -> None:
        tone = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / RATE))) for n in range(RATE // 5))
        await task.queue_frame(OutputAudioRawFrame(audio=tone, sample_rate=RATE, num_channels=1))

    @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
    async def on_disconnected(transport: Any, client: Any) -> None:
        await task.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(task)
    await runner.run()
