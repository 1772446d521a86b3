"""The words a caller hears when a converged bot's vendor is gone, before the session ends.

A speech-to-speech bot has no TTS of its own to say it, so the host plays a recorded line (shipped
beside this module, spoken by espeak-ng) into the output transport the pipeline plays through, as
uninterruptible audio, once the caller is on the line (their first audio arrived): one line for a
vendor that never answered the session, one for a session it ended. An observer the host adds to the
user's worker (bot/watch.py), as the consent announcement is (bot/recording/consent.py).

The session ends only once the transport has played the line out, not after its length in wall time
(bot/recording/playout.py): on a busy host a clock started at queueing would cut the line short.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, StartFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from bot.recording.announcement import Announcement, load_announcement
from bot.recording.playout import PLAYOUT_LIMIT_SECONDS, Playout

GONE = Path(__file__).with_name("vendor_gone.wav")  # "Sorry, the assistant has left this call. …"
UNREACHABLE = Path(__file__).with_name("vendor_unreachable.wav")  # "Sorry, the assistant cannot be reached. …"
CALLER_WAIT_SECONDS = 30.0  # a caller not yet on the line: the session's join deadline ends it before


class Goodbye(BaseObserver):
    def __init__(self) -> None:
        super().__init__()
        self._output: BaseOutputTransport | None = None
        self._caller_heard = asyncio.Event()
        self._playout = Playout()

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, source = data.frame, data.source
        if isinstance(frame, StartFrame) and isinstance(source, BaseOutputTransport):
            self._output = source  # the transport the caller hears
        elif isinstance(frame, InputAudioRawFrame) and isinstance(source, BaseInputTransport):
            self._caller_heard.set()
        else:
            self._playout.seen(data)

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
        if not await self._playout.play(output, line, PLAYOUT_LIMIT_SECONDS):
            logger.warning(f"{output} had not played the vendor's goodbye out after "
                           f"{line.seconds + PLAYOUT_LIMIT_SECONDS:.1f} s: the session ends anyway")
        return line.seconds


_lines: dict[Path, Announcement] = {}


def _line(path: Path) -> Announcement:
    if path not in _lines:
        _lines[path] = load_announcement(path)
    return _lines[path]
