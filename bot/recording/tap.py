"""Sees both directions of the call's transport from outside the user's pipeline.

An observer the host adds to every `PipelineWorker` (bot/watch.py): the input transport's
`InputAudioRawFrame`s are the caller (as the transport received them, before any processor of the
user's), the output transport's `OutputAudioRawFrame`s pushed on after it wrote them are the bot
(as they were played out: what an interruption cut is not in them); the frames that make the
call's turns go to turns.py. Pipecat calls an observer
from a task of its own, off the pipeline; this one only stamps the frame with when it was pushed
(the pipeline clock's time, not when the observer got round to it) and hands it to the recorder,
which never waits.
"""

from __future__ import annotations

import time
from typing import Protocol

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from bot.recording.turns import TURN_FRAMES

CALLER, BOT = 0, 1


class Sink(Protocol):
    def offer(self, side: int, audio: bytes, sample_rate: int, channels: int, seen_at: float) -> None: ...

    def turn(self, frame: object, source: object, direction: FrameDirection, seen_at: float) -> None: ...


class RecordingTap(BaseObserver):
    def __init__(self, sink: Sink) -> None:
        super().__init__(observe_every_push=True)  # the output transport's push of a TTS frame is not its first
        self._sink = sink

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, source = data.frame, data.source
        if isinstance(frame, InputAudioRawFrame) and isinstance(source, BaseInputTransport):
            side = CALLER
        elif (isinstance(frame, OutputAudioRawFrame) and isinstance(source, BaseOutputTransport)
              and data.direction is FrameDirection.DOWNSTREAM):
            side = BOT
        else:
            if data.first_push and isinstance(frame, TURN_FRAMES):
                self._sink.turn(frame, source, data.direction, pushed_at(data))
            return
        self._sink.offer(side, frame.audio, frame.sample_rate, frame.num_channels, pushed_at(data))


def pushed_at(data: FramePushed) -> float:
    """`time.monotonic()` when the frame was pushed: now, less how long ago the pipeline clock says."""
    now = time.monotonic()
    try:
        lag = (data.source.get_clock().get_time() - data.timestamp) / 1e9
    except Exception:  # a processor with no clock yet: as seen
        return now
    return now - lag if 0 <= lag < 60 else now
