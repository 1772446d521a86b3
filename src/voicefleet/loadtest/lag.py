"""How far a caller's audio fell behind real time as the call went, so that an answer can be timed
without the caller's own lag: a caller short of CPU sends its silence after its speech late (the bot
hears the end of its turn late) and stamps the bot's audio late as it reads it, and either adds the
caller's stall to the answer's latency. A note is kept only when the lag moved by `STEP_SECONDS`, so
a call that keeps time keeps a few notes, not one a frame."""

from __future__ import annotations

import bisect

STEP_SECONDS = 0.01
MAX_NOTES = 10_000  # past it (a call behind and catching up for hours) the oldest are dropped
# A turn's speech is given up on once nothing asked for it for its length and SPEECH_SLACK_SECONDS, or after
# SLOWEST times that in all (webrtc.py `_sent`): a caller short of CPU sends slower than real time while asked.
SPEECH_SLACK_SECONDS = 5.0
SLOWEST = 3.0


def longest_send(speech_seconds: float) -> float:
    """The most a turn's speech of `speech_seconds` may take to go out before it is given up on."""
    return SLOWEST * (speech_seconds + SPEECH_SLACK_SECONDS)


class SpeechLate(TimeoutError):
    """The caller could not send its speech in time: its own process fell behind real time (a WebRTC
    mic is drained by the caller's own sender at the caller's pace, whatever the bot does), so the call
    says nothing about the bot."""

    def __init__(self, message: str, behind: float) -> None:
        super().__init__(message)
        self.behind = behind  # seconds the caller's audio was behind real time when it gave up


class LagTrace:
    def __init__(self) -> None:
        self._times: list[float] = []  # monotonic
        self._lags: list[float] = []  # seconds behind real time from then on

    def note(self, at: float, lag: float) -> None:
        """The caller's audio sent at `at` (monotonic) was `lag` seconds behind when it was due."""
        lag = max(0.0, lag)
        if self._lags and abs(lag - self._lags[-1]) < STEP_SECONDS:
            return
        if len(self._times) >= MAX_NOTES:
            del self._times[: MAX_NOTES // 2], self._lags[: MAX_NOTES // 2]
        self._times.append(at)
        self._lags.append(lag)

    def worst_growth(self, since: float, until: float) -> float:
        """The most the caller fell further behind between `since` and `until` than it was at `since`."""
        first = bisect.bisect_right(self._times, since)
        before = self._lags[first - 1] if first else 0.0
        last = bisect.bisect_right(self._times, until)
        return max([0.0, *(lag - before for lag in self._lags[first:last])])


def own_latency(trace: LagTrace, speech_end: float, reply_start: float) -> float:
    """An answer's latency (seconds from the caller's end of speech to the bot's first audio it heard)
    less the most the caller fell behind meanwhile: the bot's and the network's part."""
    return max(0.0, reply_start - speech_end - trace.worst_growth(speech_end, reply_start))
