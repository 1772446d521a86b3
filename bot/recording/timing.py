"""The call's turns timed on the recording's own clock (clock.py), so that a transcript line points
at its audio in the WAV.

A frame of the caller's side (the VAD's, the STT's) is timed when it was pushed, on the call's
clock: a backlog of the caller's audio handed over at once moved the clock's origin back as it was
laid, so a frame derived from it lands beside that audio. The bot's speech is timed by its audio:
its turn begins where its first audio after `BotStartedSpeakingFrame` was laid, and ends where its
audio so far ends when `BotStoppedSpeakingFrame` comes (a WebSocket transport sends at twice real
time, and stops being "speaking" before the caller has heard it all). Times are seconds from where
the recording keeps the call from (`kept_from`: 0, or a consent session's announcement's end);
what happened before it is not kept.
"""

from __future__ import annotations

from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame
from pipecat.processors.frame_processor import FrameDirection

from bot.recording.clock import TwoTrackClock
from bot.recording.tap import BOT
from bot.recording.turns import TurnLog, played

BOT_SPEAKING = (BotStartedSpeakingFrame, BotStoppedSpeakingFrame)


class TurnTiming:
    def __init__(self, turns: TurnLog, clock: TwoTrackClock) -> None:
        self._turns = turns
        self._clock = clock
        self._starting: tuple[object, object, FrameDirection] | None = None  # waits for the bot's first audio
        self.kept_from: float | None = None  # seconds on the call's clock; None: nothing is kept (yet)
        self._moved_back = 0.0  # the clock's origin moves followed so far

    def follow_origin(self) -> None:
        """The call's start moved back since the last look: what was timed before moves with it, but
        for what the clock has handed out (its audio cannot move). Called after each frame is laid, so
        that what was handed out is what it was when the start moved."""
        if (moved := self._clock.moved_back - self._moved_back) > 0:
            self._moved_back = self._clock.moved_back
            handed_out = self._clock.emitted / self._clock.sample_rate - (self.kept_from or 0.0)
            self._turns.shift(moved, since=handed_out)

    def heard(self, frame: object, source: object, direction: FrameDirection, pushed: float) -> None:
        """A turn frame pushed at the monotonic time `pushed`."""
        self.follow_origin()
        if direction is FrameDirection.UPSTREAM and isinstance(frame, BOT_SPEAKING):
            return  # the upstream copy of a frame the output transport also pushed downstream: one event
        # A frame of its turn before its audio: it began no later than now; with no audio on the clock
        # yet (a greeting that is the call's first sound) there is no now to time it by: its audio will.
        if self._starting is not None and self._clock.origin is not None:
            self._start(max(self._clock.at(pushed), self._clock.end(BOT)))
        if played(frame, source, direction, BotStartedSpeakingFrame):
            self._starting = (frame, source, direction)
            return
        stopped = played(frame, source, direction, BotStoppedSpeakingFrame)
        self._give(frame, source, direction, self._clock.end(BOT) if stopped else self._clock.at(pushed))

    def bot_audio(self, placed: float) -> None:
        """The bot's audio was laid at `placed` seconds on the call's clock."""
        self.follow_origin()
        if self._starting is not None:
            self._start(placed)

    def close(self, at: float) -> None:
        """The call ended at `at` seconds on its clock: the bot's turn under way ends with its audio."""
        self.follow_origin()
        self._starting = None
        if self.kept_from is not None:
            self._turns.close(max(0.0, min(at, self._clock.end(BOT)) - self.kept_from))

    def _start(self, at: float) -> None:
        assert self._starting is not None
        frame, source, direction = self._starting
        self._starting = None
        self._give(frame, source, direction, at)

    def _give(self, frame: object, source: object, direction: FrameDirection, at: float) -> None:
        if self.kept_from is not None and at >= self.kept_from:
            self._turns.heard(frame, source, direction, at - self.kept_from)
