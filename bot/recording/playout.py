"""Plays a recorded line (the consent announcement, the vendor's goodbye) into the output transport
the caller hears, and tells when the transport has played it out, not when its length in wall time
has passed: on a busy host the transport starts late or writes slowly, and a clock started at
queueing would count the line heard too soon.

A `TTSStoppedFrame` queued behind the line marks its end: Pipecat's output transport flushes the
line's last part-chunk before it and pushes it on only once every frame before it was written. The
observer that plays the line hands each frame it sees to `seen`, which notices that one coming out.
"""

from __future__ import annotations

import asyncio
import time

from pipecat.frames.frames import OutputAudioRawFrame, TTSStoppedFrame
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport

from bot.recording.announcement import Announcement

PLAYOUT_LIMIT_SECONDS = 10.0  # past the line's length: a transport stuck this long has not played it
PLAYOUT_MARGIN_SECONDS = 0.3  # the caller's own buffer after the last frame left: heard it all by then


class Playout:
    def __init__(self) -> None:
        self._output: BaseOutputTransport | None = None
        self._end_of_line: TTSStoppedFrame | None = None
        self._played = asyncio.Event()

    def seen(self, data: FramePushed) -> None:
        """A frame the observer saw pushed: the line's end coming out of its transport means played."""
        if data.frame is self._end_of_line and data.source is self._output:
            self._played.set()  # every frame of the line before it was written to the caller

    async def play(self, output: BaseOutputTransport, line: Announcement, limit: float) -> bool:
        """Plays `line` uninterruptibly and returns once the caller has heard it: True, or False when
        the transport had not played it out `limit` seconds past its length (stuck)."""
        queued_at = time.monotonic()
        for piece in line.frames():
            frame = OutputAudioRawFrame(piece, sample_rate=line.sample_rate, num_channels=1)
            frame.interruptible = False
            await output.queue_frame(frame, FrameDirection.DOWNSTREAM)
        self._output, self._end_of_line = output, TTSStoppedFrame()
        self._end_of_line.interruptible = False
        self._played.clear()
        await output.queue_frame(self._end_of_line, FrameDirection.DOWNSTREAM)
        try:
            await asyncio.wait_for(self._played.wait(), line.seconds + limit)
        except TimeoutError:
            return False
        # A transport that sends faster than real time (Pipecat's WebSocket ones) leaves the rest in the
        # caller's buffer: never sooner than the line's own length after it was queued.
        await asyncio.sleep(max(0.0, queued_at + line.seconds - time.monotonic()) + PLAYOUT_MARGIN_SECONDS)
        return True
