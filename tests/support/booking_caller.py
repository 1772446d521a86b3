"""A caller for the booking line's own pipeline, with no transport: a sentence spoken by another
eSpeak NG voice, fed in real time, and an output transport that plays its audio at the pace a
speaker would (so the bot's speaking frames come when a caller would hear them)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import soxr
from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from tests.support.examples import BOOKING, use_example

use_example(BOOKING)
from booking_line import VOICE  # noqa: E402 - the example's folder is on the path first

RATE = 16000
CALLER_VOICE = "en-us+f3"  # not the bot's own en-us timbre: the recogniser hears another voice


def caller_says(*sentences: str) -> list[InputAudioRawFrame]:
    """Each sentence as the caller's 20 ms frames, with a second of silence around it."""
    pause = np.zeros(RATE, dtype=np.int16)
    parts = [pause]
    for sentence in sentences:
        speech = np.frombuffer(VOICE.synthesise(sentence, voice=CALLER_VOICE), dtype=np.int16)
        parts += [soxr.resample(speech, VOICE.sample_rate, RATE).astype(np.int16), pause, pause]
    audio = np.concatenate(parts)
    return [InputAudioRawFrame(audio[i : i + 320].tobytes(), RATE, 1) for i in range(0, len(audio), 320)]


class RealTime(FrameProcessor):
    """The transport's input, in time: each audio frame passed on when a microphone would have had
    it. The turn-taking waits in wall time, so audio pushed all at once would end no turn."""

    def __init__(self) -> None:
        super().__init__()
        self._due: float | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            now = time.monotonic()
            self._due = max(self._due or now, now - 0.1) + len(frame.audio) / 2 / frame.sample_rate
            await asyncio.sleep(self._due - now)
        await self.push_frame(frame, direction)


class Speaker(BaseOutputTransport):
    """An output transport whose audio takes as long to write as to play, as a real one's does."""

    def __init__(self) -> None:
        super().__init__(TransportParams(audio_out_enabled=True))

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        await asyncio.sleep(len(frame.audio) / 2 / frame.sample_rate / frame.num_channels)
        return True
