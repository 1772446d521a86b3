"""Where a call's time went: seconds per phase of the call, as the caller saw them, and how much of it
was speech (the caller's audio and the bot's, played in real time: the part no caller can shorten).

A phase is added to each time it recurs (a call's turns each have a `speaking` and a `reply_wait`).
The `--json` summary carries each call's phases; `bench/eval_suite.py` sums them over a suite.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from voicefleet.loadtest.audio import BOT_AUDIO_RMS

# In the order a call goes through them (docs/performance.md, "The booking suite").
PHASES = (
    "start",  # POST /start answered
    "offer",  # the offer `POST`ed → its answer (the bot's connection and pipeline built)
    "connect",  # the rest of the connection: the caller's ICE gathering, the ICE checks, DTLS
    "greeting_wait",  # connected → the greeting's first RTVI bot-started-speaking
    "greeting",  # the bot speaking its greeting
    "synthesis",  # the caller's voice synthesising a turn, where the call waited for it
    "speaking",  # the caller's turn played in real time
    "reply_wait",  # the caller's end of speech → the bot starts its answer (end of turn, think, TTS)
    "bot_speaking",  # the bot speaking its answers
    "quiet",  # the quiet after an answer that says it is over
    "hang_up",  # the last answer's end → the bot's hang-up seen
    "close",  # the caller's side of the connection closed: the call's slot is free after it
    "after",  # the session read and the rubrics judged, while the runner's next call starts
    "stop",  # the session stopped (`DELETE`), as well
)


@dataclass
class Phases:
    began: float = field(default_factory=time.monotonic)
    seconds: dict[str, float] = field(default_factory=dict)
    caller_speech: float = 0.0  # seconds of the caller's audio played
    bot_speech: float = 0.0  # seconds of the bot's answers as heard, first loud frame to last (`audible`)
    slot: float | None = None  # seconds from the start to the call's slot freed for the next call

    def freed(self) -> None:
        self.slot = time.monotonic() - self.began

    def add(self, phase: str, seconds: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(0.0, seconds)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.add(phase, time.monotonic() - began)

    def as_dict(self, run_began: float) -> dict[str, object]:
        """The call's phases for the `--json` summary; `began_s` from the run's first call."""
        return {"began_s": round(self.began - run_began, 3),
                "phases": {phase: round(self.seconds[phase], 3) for phase in PHASES if phase in self.seconds},
                "caller_speech_s": round(self.caller_speech, 3), "bot_speech_s": round(self.bot_speech, 3),
                "slot_s": None if self.slot is None else round(self.slot, 3)}


def audible(times: Sequence[float], levels: Sequence[float], *, after: float, frame: float = 0.02) -> float:
    """Seconds from the first loud frame received after `after` to the end of the last: an answer's
    audio as it played, its pauses between sentences included. The bot's RTVI bot-stopped-speaking
    comes later (Pipecat's output waits 0.35 s of no audio before it says so)."""
    loud = [t for t, level in zip(times, levels, strict=True) if t > after and level > BOT_AUDIO_RMS]
    return loud[-1] - loud[0] + frame if loud else 0.0
