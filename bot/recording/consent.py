"""Plays the consent announcement to the caller before the session is recorded.

An observer the host adds to the user's pipeline worker beside the recording's tap (the user's bot
is unchanged). When the caller's first audio arrives (they are on the line and hear what is
played), the announcement is queued into the output transport the pipeline plays through, as
uninterruptible audio: a barge-in does not cut it, and speech the bot queues meanwhile follows it.
Once the transport has played it out (bot/recording/playout.py: not after its length in wall time,
which a busy host's slow transport outlasts), the recorder starts keeping the call (audio and turns)
and the dispatcher is told (`recording.consent`: when, how long), which notes `recording_consent` on
the timeline. A transport stuck past the announcement's length and a limit never counts as played:
the call goes on unrecorded, as one whose announcement cannot be played does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, StartFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from bot.recording.announcement import Announcement
from bot.recording.playout import PLAYOUT_LIMIT_SECONDS, Playout


class ConsentAnnouncer(BaseObserver):
    def __init__(self, announcement: Announcement, announced: Callable[[float, float], None]) -> None:
        super().__init__()
        self._announcement = announcement
        self._announced = announced  # (epoch seconds it began, its seconds): the recorder starts, the dispatcher told
        self._output: BaseOutputTransport | None = None
        self._started = False
        self._playing: asyncio.Task[None] | None = None
        self._playout = Playout()

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, source = data.frame, data.source
        if isinstance(frame, StartFrame) and isinstance(source, BaseOutputTransport):
            self._output = source  # the transport the caller hears
        elif (not self._started and self._output is not None and isinstance(frame, InputAudioRawFrame)
              and isinstance(source, BaseInputTransport)):
            self._started = True
            self._playing = asyncio.get_running_loop().create_task(self._play(self._output), name="consent")
        else:
            self._playout.seen(data)

    async def _play(self, output: BaseOutputTransport) -> None:
        try:
            played = await self._playout.play(output, self._announcement, PLAYOUT_LIMIT_SECONDS)
        except Exception:  # never the call: the session stays unrecorded, and its report says so
            logger.exception("recording: the consent announcement could not be played; the call is not recorded")
            return
        if not played:  # the caller may not have heard it all: nothing they say may be kept
            logger.warning(f"recording: {output} had not played the consent announcement out after "
                           f"{self._announcement.seconds + PLAYOUT_LIMIT_SECONDS:.1f} s; the call is not recorded")
            return
        # Counted back from when the caller had heard it all, however late the transport played it:
        # the dispatcher keeps the session (its bot's log lines too) from `began + seconds`.
        seconds = self._announcement.seconds
        self._announced(time.time() - seconds, seconds)
