"""A user's phone bot in Pipecat's shape for warm transfers: its "TTS" (the vendor's service stood in for,
frames as a TTS service sends them) plays each line it is given (a `TTSSpeakFrame`, as the bot host
queues a warm transfer's line) as a BRIEFING_HZ tone (FAILED_HZ: its line for a person who did not answer) of
LINE_SECONDS and writes the text down, one line each, to `PHONE_TEST_REPORTS/{session}.said`. It
names its own line for a transfer the person did not answer (`on_warm_transfer`). Its transport sends
OUT_CHUNK_SECONDS chunks (Pipecat's `audio_out_10ms_chunks`), paced from the second one on: its audio is
that far ahead of real time, so the end of a line still waits at the edge when the bot has said it."""

import math
import os
import struct
from pathlib import Path
from typing import Any

from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import create_transport
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.workers.runner import WorkerRunner

from bot.transfer import WarmStep, on_warm_transfer

RATE = 8000
BRIEFING_HZ = 1400  # no note of the edge's hold tones (sipedge/warm_transfer.py)
FAILED_HZ = 2000
LINE_SECONDS = 1.6
LONG_BRIEFING = "Long briefing: "  # a line beginning so is said for LONG_SECONDS
LONG_SECONDS = 8.0
# Pipecat's default is 40 ms; a bot may send larger ones. Each line lasts a whole number of them: a shorter last
# chunk is paced as a whole one, and the line's end would be less ahead.
OUT_CHUNK_SECONDS = 0.4
UNANSWERED_LINE = "Sorry, the desk did not pick up. I am still here."


@on_warm_transfer
def line(step: WarmStep) -> str | None:
    return UNANSWERED_LINE if step.event == "failed" else None


class ToneVoice(FrameProcessor):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, TTSSpeakFrame):
            await self.push_frame(frame, direction)
            return
        with self._path.open("a") as said:
            said.write(frame.text.replace("\n", " ") + "\n")
        samples = int(RATE * (LONG_SECONDS if frame.text.startswith(LONG_BRIEFING) else LINE_SECONDS))
        hz = FAILED_HZ if frame.text == UNANSWERED_LINE else BRIEFING_HZ
        tone = b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * n / RATE))) for n in range(samples))
        await self.push_frame(TTSStartedFrame())  # as a TTS service speaks: the output transport says it spoke
        await self.push_frame(TTSAudioRawFrame(audio=tone, sample_rate=RATE, num_channels=1))
        await self.push_frame(TTSStoppedFrame())


def params() -> FastAPIWebsocketParams:
    return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True,
                                  audio_out_10ms_chunks=round(OUT_CHUNK_SECONDS * 100))


async def bot(runner_args: Any) -> None:
    transport = await create_transport(runner_args, {"exotel": params})
    said = Path(os.environ["PHONE_TEST_REPORTS"], f"{runner_args.session_id}.said")
    task = PipelineWorker(Pipeline([transport.input(), ToneVoice(said), transport.output()]),
                          params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE))

    @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]  # Pipecat's has no types
    async def on_disconnected(transport: Any, client: Any) -> None:
        await task.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(task)
    await runner.run()
