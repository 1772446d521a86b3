"""The words a caller hears when a converged bot's vendor is gone, before the session ends.

A speech-to-speech bot has no TTS of its own to say it, so the host plays a recorded line (shipped
beside this module, spoken by espeak-ng) into the output transport the pipeline plays through, as
uninterruptible audio, once the caller is on the line (their first audio arrived): one line for a
vendor that never answered the session, one for a session it ended. An observer the host adds to the
user's worker (bot/watch.py), as the consent announcement is (bot/recording/consent.py).

The session ends only once the transport has played the line out, not after its length in wall time:
on a busy host the transport starts late or writes slowly, and a clock started at queueing would cut
the line short. A `TTSStoppedFrame` queued behind the line marks its end: the transport flushes the
line's last part-chunk before it and pushes it on only once every frame before it was written.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, StartFrame, TTSStoppedFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from bot.recording.announcement import Announcement, load_announcement

GONE = Path(__file__).with_name("vendor_gone.wav")  # "Sorry, the assistant has left this call. …"
UNREACHABLE = Path(__file__).with_name("vendor_unreachable.wav")  # "Sorry, the assistant cannot be reached. …"
PLAYOUT_MARGIN_SECONDS = 0.3  # the caller's own buffer after the last frame left: heard it all by then
PLAYOUT_LIMIT_SECONDS = 10.0  # past the line's length: a transport stuck this long still ends the session
CALLER_WAIT_SECONDS = 30.0  # a caller not yet on the line: the session's join deadline ends it before


class Goodbye(BaseObserver):
    def __init__(self) -> None:
        super().__init__()
        self._output: BaseOutputTransport | None = None
        self._caller_heard = asyncio.Event()
        self._end_of_line: TTSStoppedFrame | None = None
        self._played = asyncio.Event()

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, source = data.frame, data.source
        if isinstance(frame, StartFrame) and isinstance(source, BaseOutputTransport):
            self._output = source  # the transport the caller hears
        elif isinstance(frame, InputAudioRawFrame) and isinstance(source, BaseInputTransport):
            self._caller_heard.set()
        elif frame is self._end_of_line and source is self._output:
            self._played.set()  # every frame of the line before it was written to the caller

    async def say(self, unreachable: bool) -> float:
        """Plays the line once the caller is on the line, and returns when they have heard it; the
        seconds it lasted (0: no caller or no output transport to play it to)."""
        try:
            await asyncio.wait_for(self._caller_heard.wait(), CALLER_WAIT_SECONDS)
        except TimeoutError:
            return 0.0
        output = self._output
        if output is None:
            return 0.0
        line = _line(UNREACHABLE if unreachable else GONE)
        queued_at = time.monotonic()
        for piece in line.frames():
            frame = OutputAudioRawFrame(piece, sample_rate=line.sample_rate, num_channels=1)
            frame.interruptible = False
            await output.queue_frame(frame, FrameDirection.DOWNSTREAM)
        self._end_of_line = TTSStoppedFrame()
        self._end_of_line.interruptible = False
        self._played.clear()
        await output.queue_frame(self._end_of_line, FrameDirection.DOWNSTREAM)
        try:
            await asyncio.wait_for(self._played.wait(), line.seconds + PLAYOUT_LIMIT_SECONDS)
        except TimeoutError:
            logger.warning(f"{output} had not played the vendor's goodbye out after "
                           f"{line.seconds + PLAYOUT_LIMIT_SECONDS:.1f} s: the session ends anyway")
        # A transport that sends faster than real time (Pipecat's WebSocket ones) leaves the rest in the
        # caller's buffer: never sooner than the line's own length after it was queued.
        await asyncio.sleep(max(0.0, queued_at + line.seconds - time.monotonic()) + PLAYOUT_MARGIN_SECONDS)
        return line.seconds


_lines: dict[Path, Announcement] = {}


def _line(path: Path) -> Announcement:
    if path not in _lines:
        _lines[path] = load_announcement(path)
    return _lines[path]
