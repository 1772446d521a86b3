"""A warm transfer's line said into the session's pipeline (bot/warm_steps.py names it): queued as a
`TTSSpeakFrame`, which the bot's own TTS speaks, and done once the output transport says the bot started
and then stopped speaking (observed, as bot/watch.py observes its first audio), or after its time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame, Frame, TTSSpeakFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.transports.base_output import BaseOutputTransport

Queue = Callable[[Frame], Awaitable[None]]


class SpeechWatch(BaseObserver):
    """The output transport's speaking, as it pushes it: started and stopped."""

    def __init__(self) -> None:
        super().__init__()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._speaking = False  # a run of speech under way: the line queued now ends with it

    async def on_push_frame(self, data: FramePushed) -> None:
        if not isinstance(data.source, BaseOutputTransport):
            return
        if isinstance(data.frame, BotStartedSpeakingFrame):
            self._speaking = True
            self._started.set()
        elif isinstance(data.frame, BotStoppedSpeakingFrame):
            self._speaking = False
            if self._started.is_set():
                self._stopped.set()

    async def say(self, queue: Queue, text: str, seconds: float) -> bool:
        """True once `text` was queued and the bot started and then stopped speaking within `seconds`."""
        self._stopped.clear()
        if not self._speaking:
            self._started.clear()
        await queue(TTSSpeakFrame(text))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()
                return True
        return False
