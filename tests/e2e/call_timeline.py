"""A carrier caller's call on its own clock, beside its recording: when the caller spoke (the frames
it sent) and when it heard the bot (the frames it received, played out in order as a carrier does),
in seconds from its first audio frame, and the same measures read from the recording's channels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.fakes.carriers import CarrierCall
from tests.support.audio import BOT_AUDIO_RMS, SPEECH_RMS, loud_segments, rms

STEP = 0.02  # a carrier's frame: loudness is judged per 20 ms, on both sides of the comparison
UTTERANCE_GAP = 0.6  # a sentence's own pauses are shorter: quieter for longer splits two utterances


@dataclass(frozen=True)
class Utterance:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Windows:
    """Loudness per 20 ms: `times[i]` is where window i begins."""

    times: list[float]
    levels: list[float]

    def utterances(self, threshold: float = SPEECH_RMS) -> list[Utterance]:
        return [Utterance(s.start, s.end + STEP)
                for s in loud_segments(self.times, self.levels, threshold=threshold, gap=UTTERANCE_GAP)]

    def first_loud_after(self, after: float, threshold: float = BOT_AUDIO_RMS) -> float | None:
        return next((t for t, level in zip(self.times, self.levels, strict=True) if t >= after and level > threshold),
                    None)


def call_start(call: CarrierCall) -> float:
    """`time.monotonic()` when the caller's first audio frame began."""
    return call.sent[0][0] - STEP


def said(call: CarrierCall) -> Windows:
    """The caller's frames, each the 20 ms before it was sent."""
    origin = call_start(call)
    return Windows([at - STEP - origin for at, _ in call.sent],
                   [rms(np.frombuffer(pcm, np.int16)) for _, pcm in call.sent])


def heard(call: CarrierCall, rate: int = 8000) -> Windows:
    """The bot's frames as the caller hears them: each from when it arrived, or from the end of the
    one before (a transport sends faster than real time; the carrier plays at real time)."""
    origin, playing_until = call_start(call), 0.0
    times: list[float] = []
    levels: list[float] = []
    step = int(rate * STEP)
    for at, pcm in call.heard:
        samples = np.frombuffer(pcm, np.int16)
        begins = max(at - origin, playing_until)
        for offset in range(0, len(samples) - step + 1, step):
            times.append(begins + offset / rate)
            levels.append(rms(samples[offset:offset + step]))
        playing_until = begins + len(samples) / rate
    return Windows(times, levels)


def channel(samples: np.ndarray, rate: int) -> Windows:
    """A recording's channel in 20 ms windows from its start."""
    step = int(rate * STEP)
    count = len(samples) // step
    return Windows([i * STEP for i in range(count)], [rms(samples[i * step:(i + 1) * step]) for i in range(count)])
