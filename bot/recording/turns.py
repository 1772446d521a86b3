"""The call's turns, as the pipeline saw them: who spoke, what was said, when, and how fast the bot answered.

From the frames the tap sees (first pushes downstream only: a frame passed on by each processor, or
broadcast both ways, is one event):
the caller's final transcriptions (`TranscriptionFrame`, from the user's STT service), the bot's
speech as the output transport played it (`BotStartedSpeakingFrame` … `BotStoppedSpeakingFrame`
going downstream, with the `TTSTextFrame` words spoken meanwhile), the end of the caller's speech
(the VAD's `VADUserStoppedSpeakingFrame` less its `stop_secs`, the silence it waited for, so the
turn's latency, from there to the bot's first audio, counts the VAD's and the turn analyser's wait
as the caller does; `UserStoppedSpeakingFrame`'s own time without a VAD frame before it) and
barge-ins (`InterruptionFrame` while the bot speaks). Times are seconds on the recording's clock,
so a line points into the WAV. A bot without STT or TTS text still gets its turns' timings. Bounded:
`MAX_LINES` lines of `MAX_TEXT` characters; past that, counted, not kept.
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport

MAX_LINES = 1000
MAX_TEXT = 2000
TURN_FRAMES = (BotStartedSpeakingFrame, BotStoppedSpeakingFrame, InterruptionFrame, TranscriptionFrame, TTSTextFrame,
               UserStartedSpeakingFrame, UserStoppedSpeakingFrame, VADUserStartedSpeakingFrame,
               VADUserStoppedSpeakingFrame)


class TurnLog:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.dropped = 0
        self._bot: dict[str, Any] | None = None  # the bot's turn under way
        self._words: list[str] = []
        # The TTS service reports a sentence's words as it hands its audio on, which can be before the
        # output transport plays it (a carrier's stream is written ahead of real time): kept for the turn
        # the transport starts next, so its first sentence is not lost.
        self._coming: list[str] = []
        self._user_started: float | None = None
        self._user_stopped: float | None = None
        self._fell_silent: float | None = None  # when the VAD says the caller's last speech ended

    def heard(self, frame: object, source: object, direction: FrameDirection, at: float) -> None:
        """One first push of a turn frame, `at` seconds on the recording's clock."""
        if not one_event(direction):
            return
        if isinstance(frame, UserStartedSpeakingFrame):
            self._user_started = at
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._fell_silent = None  # speaking again: the silence that counts is a later one
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            # The VAD is sure `stop_secs` of silence after the caller stopped: the speech ended then.
            self._fell_silent = max(0.0, at - max(0.0, float(frame.stop_secs or 0.0)))
        elif isinstance(frame, UserStoppedSpeakingFrame):  # the turn's end: the VAD's, and the turn analyser's
            self._user_stopped = self._fell_silent if self._fell_silent is not None and self._fell_silent <= at \
                else at
            self._fell_silent = None
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            start = self._user_started if self._user_started is not None and self._user_started <= at else at
            self._add({"who": "caller", "text": frame.text.strip()[:MAX_TEXT], "start": _r(start), "end": _r(at)})
        elif isinstance(frame, TTSTextFrame):
            (self._words if self._bot is not None else self._coming).append(frame.text)
        elif isinstance(frame, InterruptionFrame):
            self._coming = []  # cut off before it played: never heard
            if self._bot is not None:
                self._bot["interrupted"] = True
        elif played(frame, source, direction, BotStartedSpeakingFrame) and self._bot is None:
            self._bot = {"who": "bot", "start": _r(at), "interrupted": False}
            if self._user_stopped is not None and self._user_stopped <= at:
                self._bot["latency"] = _r(at - self._user_stopped)  # end of the caller's speech → first bot audio
            self._words, self._coming = self._coming, []
        elif played(frame, source, direction, BotStoppedSpeakingFrame):
            self.close(at)

    def shift(self, seconds: float, since: float = 0.0) -> None:
        """What was timed at `since` or later happened `seconds` later on the call's clock than it was
        timed (the call's start moved back: a backlog of the caller's audio began before its first
        frame arrived). What is earlier was handed out already: its audio stays where it is, and so do
        its times, so that a line still points at its audio."""

        def moved(at: float) -> float:
            return at + seconds if at >= since else at

        for line in self.lines:
            line["start"], line["end"] = _r(moved(line["start"])), _r(moved(line["end"]))
        if self._bot is not None:
            self._bot["start"] = _r(moved(self._bot["start"]))
        self._user_started, self._user_stopped, self._fell_silent = (
            None if at is None else moved(at) for at in (self._user_started, self._user_stopped, self._fell_silent))

    def close(self, at: float) -> None:
        """Ends the bot's turn under way (its speech stopped, or the call ended)."""
        if self._bot is None:
            return
        text = " ".join(word.strip() for word in self._words if word.strip())
        self._add({**self._bot, "text": text[:MAX_TEXT], "end": _r(at)})
        self._bot, self._words = None, []

    def _add(self, line: dict[str, Any]) -> None:
        if len(self.lines) >= MAX_LINES:
            self.dropped += 1
            return
        self.lines.append(line)


def one_event(direction: FrameDirection) -> bool:
    """Whether a turn frame pushed this way is the event itself. Pipecat broadcasts its turn frames
    (`FrameProcessor.broadcast_frame`: a VAD's stop, the user aggregator's `UserStoppedSpeakingFrame`)
    as two frames, one each way; the downstream one is the event, as Pipecat's own
    `UserBotLatencyObserver` reads it (it skips every upstream push). Taking the upstream copy too
    ended the caller's turn a second time, after the transcript, and left out the VAD's and the
    recogniser's wait."""
    return direction is FrameDirection.DOWNSTREAM


def played(frame: object, source: object, direction: FrameDirection, kind: type) -> bool:
    """Whether `frame` is a `kind` the output transport pushed on as it played (the bot's speech)."""
    return (isinstance(frame, kind) and isinstance(source, BaseOutputTransport)
            and direction is FrameDirection.DOWNSTREAM)


def _r(seconds: float) -> float:
    return round(max(0.0, seconds), 3)
