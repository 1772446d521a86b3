"""Runs the parrot's turn-taking offline and reads back which replies stand.

`converse(speech)` feeds audio (1 s of silence either side; `lead` sets the silence before) through
the keyless pipeline's turn path (`OnsetVADProcessor` with the parrot's `stop_secs`, then `Parrot`)
as the input transport does, in 20 ms frames, and returns the echoes that stand plus how many replies were taken back.
Replies are judged in the order the parrot pushed them (`PushOrder`), which is what the output
transport acts on: a reply followed by an `InterruptionFrame` is cleared before it is played out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import Frame, InputAudioRawFrame, InterruptionFrame, SpeechOutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test

from tests.support.audio import Pcm
from tests.support.examples import PARROT, use_example

use_example(PARROT)  # the parrot's modules, by their bare names as its bot.py imports them
from parrot import PARROT_STOP_SECS, Parrot  # noqa: E402
from turn_vad import OnsetVADProcessor  # noqa: E402

RATE = 16000
BLOCK = RATE // 50  # 20 ms, as a WebRTC input transport delivers it


def audio_frames(samples: np.ndarray) -> list[InputAudioRawFrame]:
    return [
        InputAudioRawFrame(audio=samples[i : i + BLOCK].tobytes(), sample_rate=RATE, num_channels=1)
        for i in range(0, len(samples) - BLOCK + 1, BLOCK)
    ]


class PushOrder(FrameProcessor):
    """Records every frame in the order it was pushed to it (system frames are not reordered)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frames: list[Frame] = []

    async def queue_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM, *a: Any) -> None:
        if direction == FrameDirection.DOWNSTREAM:
            self.frames.append(frame)
        await super().queue_frame(frame, direction, *a)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


REPLY_FRAMES = 3  # a beep, the echo, and the silence that ends the bot's speech


def played_replies(frames: Sequence[Frame]) -> tuple[list[bytes], int]:
    """The echoes that stand (not followed by an interruption before the next reply), and how many were taken back."""
    replies: list[list[bytes]] = []
    standing: list[bool] = []
    for frame in frames:
        if isinstance(frame, SpeechOutputAudioRawFrame):
            if not standing or not standing[-1] or len(replies[-1]) == REPLY_FRAMES:
                replies.append([])
                standing.append(True)
            replies[-1].append(frame.audio)
        elif isinstance(frame, InterruptionFrame) and standing:
            standing[-1] = False
    if any(len(r) != REPLY_FRAMES or any(r[2]) for r in replies):
        raise ValueError("each reply is a beep, an echo, then silence")
    return [r[1] for r, ok in zip(replies, standing, strict=True) if ok], standing.count(False)


async def converse(
    speech: Pcm, parrot: Parrot | None = None, *, stop_secs: float = PARROT_STOP_SECS, lead: float = 1.0
) -> tuple[list[bytes], int]:
    silence = np.zeros(RATE, dtype=np.int16)
    recorder = PushOrder()
    await run_test(
        Pipeline(
            [OnsetVADProcessor(vad_analyzer=SileroVADAnalyzer(), stop_secs=stop_secs), parrot or Parrot(), recorder]
        ),
        frames_to_send=audio_frames(np.concatenate([silence[: int(lead * RATE)], speech.samples, silence])),
    )
    return played_replies(recorder.frames)
