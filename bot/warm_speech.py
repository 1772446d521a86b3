"""A warm transfer's line said into the session's pipeline (bot/warm_steps.py names it): queued as a
`TTSSpeakFrame`, which the bot's own TTS speaks, followed by a marker frame (`LineEnd`) that travels behind
the line's audio (Pipecat's TTS services keep a frame queued after a `TTSSpeakFrame` behind its audio, and
the output transport passes it on once the audio before it has played). The line is said once its own
audio reached the output transport, its marker came out behind it and the bot stopped speaking after it:
speech that ended before (the bot still talking when the step came) does not count. An interruption before
the marker (the person said "Hello?" over it) drops the rest of the line: it is said again while time
remains, else it is not said. `stop` ends a line under way and interrupts the bot (a Pipecat interruption).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    DataFrame,
    Frame,
    InterruptionFrame,
    InterruptionWorkerFrame,
    OutputAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport

SAY_TRIES = 2  # a line the person talked over is said once more


class Queue(Protocol):
    """A frame into the session's pipelines (downstream), or at their ends (upstream)."""

    def __call__(self, frame: Frame, direction: FrameDirection = ...) -> Awaitable[None]: ...


@dataclass
class LineEnd(DataFrame):
    """Follows a warm transfer's line through the pipeline, behind its audio."""


@dataclass(eq=False)
class _Line:
    speak: TTSSpeakFrame
    end: LineEnd = field(default_factory=LineEnd)
    speaker: FrameProcessor | None = None  # where the speak frame went last: the processor saying it
    heard: bool = False  # its audio reached the output transport
    played: bool = False  # its marker came out of the output transport
    outcome: str = ""  # "said", "cut" (interrupted), "unheard", "stopped"
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self, outcome: str) -> None:
        if not self.settled.is_set():
            self.outcome = outcome
            self.settled.set()


class SpeechWatch(BaseObserver):
    """The output transport's speaking and a warm transfer's line in the pipeline, as the frames pass."""

    def __init__(self) -> None:
        super().__init__()
        self._speaking = False
        self._line: _Line | None = None
        self._quiet = asyncio.Event()  # the bot is not speaking
        self._quiet.set()
        self._interrupted = asyncio.Event()  # an interruption came out of the output transport
        self.stops = 0  # how many `stop`s came: a line asked for before the last one is not said

    async def on_push_frame(self, data: FramePushed) -> None:
        line, frame = self._line, data.frame
        if line is not None:
            if frame is line.speak:
                line.speaker = data.destination
            elif isinstance(frame, OutputAudioRawFrame) and line.speaker is not None and data.source is line.speaker:
                line.heard = True
        if not isinstance(data.source, BaseOutputTransport):
            return
        if isinstance(frame, BotStartedSpeakingFrame):
            self._speaking = True
            self._quiet.clear()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._speaking = False
            self._quiet.set()
            if line is not None and line.played:
                line.settle("said")
        elif line is not None and frame is line.end:
            line.played = True
            if not line.heard:  # nothing of it was spoken (no TTS in the pipeline, say)
                line.settle("unheard")
            elif not self._speaking:
                line.settle("said")
        elif isinstance(frame, InterruptionFrame):
            self._interrupted.set()
            if line is not None and not line.played:
                line.settle("cut")

    async def say(self, queue: Queue, text: str, seconds: float, stops: int | None = None) -> bool:
        """True once `text` was said through to its end within `seconds` (said again if interrupted). False
        at once if a `stop` came since `stops` (`self.stops` when the line was asked for)."""
        if stops is not None and stops != self.stops:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        for _ in range(SAY_TRIES):
            line = _Line(TTSSpeakFrame(text))
            self._line = line
            try:
                await queue(line.speak)
                await queue(line.end)
                async with asyncio.timeout_at(deadline):
                    await line.settled.wait()
            except TimeoutError:
                return False
            finally:
                if self._line is line:
                    self._line = None
            if line.outcome != "cut":
                return line.outcome == "said"
        return False

    async def stop(self, queue: Queue, seconds: float) -> bool:
        """The line under way given up and the bot interrupted: True once it is quiet, within `seconds`."""
        self.stops += 1
        if self._line is not None:
            self._line.settle("stopped")
            self._line = None
        self._interrupted.clear()
        await queue(InterruptionWorkerFrame(), FrameDirection.UPSTREAM)
        try:
            async with asyncio.timeout(seconds):
                await self._interrupted.wait()  # past the TTS and the output transport: what was queued is gone
                await self._quiet.wait()
        except TimeoutError:
            return False
        return True
